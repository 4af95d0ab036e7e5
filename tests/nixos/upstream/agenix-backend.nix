# A third-party backend module in the style of mrVanDalo/nixos-artifacts-agenix:
# it declares its settings as options under `artifacts.config.agenix` and
# turns the store into `age.secrets`. Evaluated with our modules by
# tests/e2e/nixos.rs to prove such a module imports cleanly.
{ config, lib, ... }:
let
  settings = config.artifacts.config.agenix;
in
{
  options.artifacts.config.agenix = {
    storeDir = lib.mkOption {
      type = lib.types.str;
      default = "secrets";
      description = "Where the CLI writes, relative to the project.";
    };
    flakeStoreDir = lib.mkOption {
      type = lib.types.path;
      description = "The same directory as a path, read at evaluation.";
    };
    machineName = lib.mkOption {
      type = lib.types.str;
      default = config.networking.hostName;
      description = "This machine's directory under per-machine/.";
    };
    publicHostKey = lib.mkOption {
      type = lib.types.str;
      description = "The host's public key.";
    };
    publicUserKeys = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      description = "More recipients.";
    };
  };

  config.age.secrets = lib.listToAttrs (
    lib.concatMap (
      artifact:
      map (file: {
        name = "${artifact.name}-${file.name}";
        value = {
          file = "${settings.flakeStoreDir}/per-machine/${settings.machineName}/${artifact.name}/${file.name}.age";
          inherit (file) owner group path mode;
        };
      }) (lib.attrValues artifact.files)
    ) (lib.attrValues config.artifacts.store)
  );
}
