# NixOS side of the agenix backend: each secret file of an artifact whose
# backend is agenix becomes `age.secrets."<artifact>-<file>"`, decrypted by
# agenix at activation to the declared path, owner, group and mode. Import
# agenix's NixOS module too. The mapping is nix-modules/lib/agenix.nix.
{ config, lib, ... }:
let
  cfg = config.artifacts;
  common = import ../../nix-modules/lib/common.nix;
  defaultBackend = cfg.default.backend or null;
  used = common.artifactsUsing [ "agenix" ] defaultBackend (cfg.store or { }) != [ ];
in
{
  imports = [ ../../nix-modules/backend-options.nix ];

  config = lib.mkIf used {
    assertions = [
      {
        assertion = cfg.projectRoot != null;
        message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the agenix files under `secrets/` can be found";
      }
    ];
    age.secrets = lib.mkIf (cfg.projectRoot != null) (
      import ../../nix-modules/lib/agenix.nix {
        store = cfg.store or { };
        name = cfg.machineName;
        config = cfg.config or { };
        inherit defaultBackend;
        inherit (cfg) projectRoot;
      }
    );
  };
}
