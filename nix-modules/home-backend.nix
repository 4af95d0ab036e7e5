# The one shape of a storing backend's Home Manager module (agenix and
# sops-nix differ only in the arguments): each secret file of an artifact
# whose backend is one of `names` becomes an entry of the backend's own Home
# Manager option (`option`, e.g. [ "age" "secrets" ]), as `mapping` (a pure
# helper of nix-modules/lib) computes it for `artifacts.userName`; the
# artifact's target waits for the backend's user `service`, which decrypts
# at login (unlike NixOS, where activation installs the files before any
# unit starts).
{
  names,
  service,
  option,
  mapping,
  # How the files are called in the projectRoot assertion ("agenix", "sops").
  what,
}:
{ config, lib, ... }:
let
  cfg = config.artifacts;
  common = import ./lib/common.nix;
  defaultBackend = cfg.default.backend or null;
  artifacts = common.artifactsUsing names defaultBackend (cfg.store or { });
in
{
  imports = [ ./home-backend-options.nix ];

  config = lib.mkIf (artifacts != [ ]) (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = cfg.projectRoot != null;
            message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the ${what} files under `secrets/` can be found";
          }
        ];
        systemd.user.targets = builtins.listToAttrs (
          map (artifact: {
            name = "artifacts-${artifact.name}";
            value.Unit = {
              After = [ service ];
              Requires = [ service ];
            };
          }) artifacts
        );
      }
      (lib.setAttrByPath option (
        lib.mkIf (cfg.projectRoot != null) (
          import mapping {
            store = cfg.store or { };
            name = cfg.userName;
            kind = "homemanager";
            config = cfg.config or { };
            inherit defaultBackend;
            inherit (cfg) projectRoot;
          }
        )
      ))
    ]
  );
}
