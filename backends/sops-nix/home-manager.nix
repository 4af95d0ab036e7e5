# Home Manager side of the sops-nix backend: each secret file of an artifact
# whose backend is sops-nix (or sops) becomes `sops.secrets."<artifact>/<file>"`
# with `sopsFile` = the user's file `secrets/per-user/<user>.sops.yaml` and
# `key = "<artifact>/<file>"`, decrypted by sops-nix's Home Manager module to
# the declared path (`$XDG_RUNTIME_DIR` given as sops-nix's `%r`) and mode.
# Import sops-nix's Home Manager module (`sops-nix.homeManagerModules.sops`)
# too and give it the user's key (`sops.age.keyFile` or `sops.age.sshKeyPaths`).
# The mapping is nix-modules/lib/sops-nix.nix; the user is `artifacts.userName`.
{ config, lib, ... }:
let
  cfg = config.artifacts;
  common = import ../../nix-modules/lib/common.nix;
  defaultBackend = cfg.default.backend or null;
  artifacts =
    common.artifactsUsing [ "sops-nix" "sops" ] defaultBackend (cfg.store or { });
  used = artifacts != [ ];
in
{
  imports = [ ../../nix-modules/home-backend-options.nix ];

  config = lib.mkIf used {
    assertions = [
      {
        assertion = cfg.projectRoot != null;
        message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the sops files under `secrets/` can be found";
      }
    ];
    # The files appear when sops-nix.service has run (a user unit, unlike on
    # NixOS where activation installs them before any unit starts).
    systemd.user.targets = builtins.listToAttrs (
      map (artifact: {
        name = "artifacts-${artifact.name}";
        value.Unit = {
          After = [ "sops-nix.service" ];
          Requires = [ "sops-nix.service" ];
        };
      }) artifacts
    );
    sops.secrets = lib.mkIf (cfg.projectRoot != null) (
      import ../../nix-modules/lib/sops-nix.nix {
        store = cfg.store or { };
        name = cfg.userName;
        kind = "homemanager";
        config = cfg.config or { };
        inherit defaultBackend;
        inherit (cfg) projectRoot;
      }
    );
  };
}
