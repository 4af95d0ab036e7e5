# NixOS side of the openbao backend (alias vault): the secrets stay on the
# OpenBao server; the machine fetches its own with its AppRole. One systemd
# oneshot, `artifacts-openbao.service`, runs `artifacts activate` for every
# artifact of this machine whose backend is openbao or vault, after the
# network is up and before the units in `artifacts.openbao.before`; each
# artifact's `artifacts-<name>.target` (nix-modules/lib/targets.nix) follows
# it, so a service that needs the files orders itself after that target.
# With `artifacts.openbao.timer.enable`, `artifacts-openbao-refresh.timer`
# runs the same fetch again to pick up rotations (a separate service: the
# boot oneshot stays active and would not run twice).
#
# The AppRole's ids are files on the machine (`roleIdFile`, `secretIdFile`);
# `artifacts openbao policies --apply` creates the policy and AppRole, the
# operator puts the ids there. The manifest the service reads is on
# `system.build.artifactsOpenbao.manifest` for debugging. The manifest and
# the ExecStart are built by nix-modules/lib/openbao.nix, shared with the
# Home Manager side (./home-manager.nix).
{ config, lib, pkgs, ... }:
let
  cfg = config.artifacts;
  ocfg = cfg.openbao;
  openbao = import ../../nix-modules/lib/openbao.nix;
  fetched = openbao.fetched (cfg.default.backend or null) (cfg.store or { });
  manifestData = openbao.manifest {
    kind = "nixos";
    name = cfg.machineName;
    store = cfg.store or { };
    defaultBackend = cfg.default.backend or null;
    config = cfg.config or { };
    inherit (ocfg) roleIdFile secretIdFile address;
  };
  manifest = pkgs.writeText "artifacts-openbao-${cfg.machineName}.json" (builtins.toJSON manifestData);
  execStart = openbao.execStart {
    artifacts = "${ocfg.package}/bin/artifacts";
    manifest = "${manifest}";
    kind = "nixos";
    name = cfg.machineName;
    inherit fetched;
  };
  fetch = {
    description = "Fetch this machine's artifacts from OpenBao";
    wants = [ "network-online.target" ];
    after = [ "network-online.target" ];
    serviceConfig = {
      Type = "oneshot";
      ExecStart = execStart;
      # The ids are read, nothing else of the environment.
      UMask = "0077";
    };
  };
in
{
  imports = [ ../../nix-modules/backend-options.nix ];

  options.artifacts.openbao =
    import ../../nix-modules/openbao-options.nix {
      inherit lib;
      # Keep these defaults in sync with DEFAULT_ROLE_ID_FILE and
      # DEFAULT_SECRET_ID_FILE in crates/artifacts-backends/src/openbao.rs.
      roleIdFile = {
        default = "/var/lib/artifacts/openbao/role-id";
        description = "The file holding this machine's AppRole role_id.";
      };
      secretIdFile = {
        default = "/var/lib/artifacts/openbao/secret-id";
        description = "The file holding this machine's AppRole secret_id (keep it 0400 root).";
      };
    }
    // {
      before = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        example = [ "nginx.service" ];
        description = "Units that must start after the artifacts are fetched.";
      };
    };

  config = lib.mkIf (fetched != [ ]) {
    assertions = [
      {
        assertion = openbao.address { inherit (ocfg) address; config = cfg.config or { }; } != null;
        message = "artifacts: set artifacts.openbao.address (or artifacts.config.openbao.address) so the machine can fetch its openbao artifacts";
      }
    ];
    systemd.services.artifacts-openbao = fetch // {
      wantedBy = [ "multi-user.target" ];
      before = ocfg.before;
      serviceConfig = fetch.serviceConfig // { RemainAfterExit = true; };
    };
    systemd.services.artifacts-openbao-refresh = lib.mkIf ocfg.timer.enable fetch;
    systemd.timers.artifacts-openbao-refresh = lib.mkIf ocfg.timer.enable {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = ocfg.timer.onCalendar;
        RandomizedDelaySec = "5m";
        Persistent = true;
      };
    };
    system.build.artifactsOpenbao = {
      inherit manifest;
      data = manifestData;
    };
  };
}
