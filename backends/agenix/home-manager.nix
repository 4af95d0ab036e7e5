# Home Manager side of the agenix backend: each secret file of an artifact
# whose backend is agenix becomes `age.secrets."<artifact>-<file>"` with the
# user's file `secrets/per-user/<user>/<artifact>/<file>.age`, decrypted by
# agenix's Home Manager module at login to the declared path and mode. Import
# agenix's Home Manager module (`agenix.homeManagerModules.default`) too, and
# set `age.identityPaths` to the user's key. The mapping is
# nix-modules/lib/agenix.nix; the user is `artifacts.userName`.
{ config, lib, ... }:
let
  cfg = config.artifacts;
  common = import ../../nix-modules/lib/common.nix;
  defaultBackend = cfg.default.backend or null;
  artifacts = common.artifactsUsing [ "agenix" ] defaultBackend (cfg.store or { });
  used = artifacts != [ ];
in
{
  imports = [ ../../nix-modules/home-backend-options.nix ];

  config = lib.mkIf used {
    assertions = [
      {
        assertion = cfg.projectRoot != null;
        message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the agenix files under `secrets/` can be found";
      }
    ];
    # The files appear when agenix.service has run (a user unit, unlike on
    # NixOS where activation installs them before any unit starts).
    systemd.user.targets = builtins.listToAttrs (
      map (artifact: {
        name = "artifacts-${artifact.name}";
        value.Unit = {
          After = [ "agenix.service" ];
          Requires = [ "agenix.service" ];
        };
      }) artifacts
    );
    age.secrets = lib.mkIf (cfg.projectRoot != null) (
      import ../../nix-modules/lib/agenix.nix {
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
