# The NixOS module of `artifacts`: the option tree (./options.nix), one
# systemd target per artifact (./lib/targets.nix), and the public files
# (`secret = false`) installed at their path with their owner, group and
# mode by the activation script `artifacts-public` (./lib/public.nix), as
# agenix and sops-nix install the secret ones. Import a backend's module too
# (backends/<name>/module.nix: agenix, sops-nix, dummy) for the artifacts
# that use it; the flake's `nixosModules.default` imports all three.
{ config, lib, ... }:
let
  cfg = config.artifacts;
  publicFiles = import ./lib/public.nix {
    inherit (cfg) store projectRoot;
    name = cfg.machineName;
    defaultBackend = cfg.default.backend;
  };
  # Installed beside the destination, then renamed over it, so a service
  # never reads half a file.
  install =
    entry:
    let
      source = builtins.path {
        path = entry.source;
        name = "artifacts-public";
      };
      temporary = "${entry.path}.artifacts-new";
    in
    "install -D -T -m ${entry.mode} -o ${lib.escapeShellArg entry.owner} -g ${lib.escapeShellArg entry.group} "
    + "${source} ${lib.escapeShellArg temporary} && mv -f -T ${lib.escapeShellArg temporary} ${lib.escapeShellArg entry.path}";
in
{
  imports = [ (import ./options.nix "nixos") ];

  config = lib.mkIf (cfg.store != { }) {
    assertions = [
      {
        assertion = publicFiles == [ ] || cfg.projectRoot != null;
        message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the public files under `public/` can be installed";
      }
    ];
    systemd.targets = import ./lib/targets.nix {
      inherit (cfg) store;
      kind = "nixos";
      defaultBackend = cfg.default.backend;
    };
    system.activationScripts.artifacts-public = lib.mkIf (publicFiles != [ ] && cfg.projectRoot != null) {
      # After users and groups exist (owner, group); /run is mounted by specialfs.
      deps = [ "specialfs" "users" "groups" ];
      supportsDryActivation = false;
      text = lib.concatMapStringsSep "\n" install publicFiles + "\n";
    };
  };
}
