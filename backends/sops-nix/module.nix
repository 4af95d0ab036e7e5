# NixOS side of the sops-nix backend: each secret file of an artifact whose
# backend is sops-nix (or sops) becomes `sops.secrets."<artifact>/<file>"`
# with `sopsFile` (the target's file in the repository) and
# `key = "<artifact>/<file>"`, decrypted by sops-nix at activation to the
# declared path, owner, group and mode. Import sops-nix's NixOS module too
# and give it a key (`sops.age.sshKeyPaths` or `sops.age.keyFile`). The
# mapping is nix-modules/lib/sops-nix.nix.
{ config, lib, ... }:
let
  cfg = config.artifacts;
  common = import ../../nix-modules/lib/common.nix;
  defaultBackend = cfg.default.backend or null;
  used =
    common.artifactsUsing [ "sops-nix" "sops" ] defaultBackend (cfg.store or { }) != [ ];
in
{
  imports = [ ../../nix-modules/backend-options.nix ];

  config = lib.mkIf used {
    assertions = [
      {
        assertion = cfg.projectRoot != null;
        message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the sops files under `secrets/` can be found";
      }
    ];
    sops.secrets = lib.mkIf (cfg.projectRoot != null) (
      import ../../nix-modules/lib/sops-nix.nix {
        store = cfg.store or { };
        name = cfg.machineName;
        config = cfg.config or { };
        inherit defaultBackend;
        inherit (cfg) projectRoot;
      }
    );
  };
}
