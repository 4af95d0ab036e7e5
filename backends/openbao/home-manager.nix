# Home Manager side of the openbao backend (alias vault): the user fetches
# their own artifacts (`per-user/<user>/…` on the server) with their own
# AppRole, as themselves. One systemd user oneshot,
# `artifacts-openbao.service`, runs `artifacts activate --target
# homemanager/<user>` for every artifact of this user whose backend is
# openbao or vault when the user's session starts (default.target); each
# artifact's user target `artifacts-<name>.target` follows it. With
# `artifacts.openbao.timer.enable`, `artifacts-openbao-refresh.timer` fetches
# again to pick up rotations (a separate service: the login oneshot stays
# active and would not run twice).
#
# A user manager cannot order itself after the system's
# network-online.target, so the login fetch retries a few times instead
# (Restart=on-failure) when the network comes up late.
#
# The AppRole's ids are files in the user's home (`roleIdFile`,
# `secretIdFile`, by default under `$XDG_CONFIG_HOME/artifacts/openbao/`);
# `artifacts openbao policies --apply` creates the policy and AppRole
# `artifacts-homemanager-<user>`, the user puts the ids there. Files land at
# their declared paths (`$XDG_RUNTIME_DIR/…`, `~/…`), owned by the user, with
# their mode. The manifest and ExecStart are built by
# nix-modules/lib/openbao.nix, shared with the NixOS side (./module.nix); the
# manifest is on `artifacts.openbao.manifest` for debugging. The user is
# `artifacts.userName`.
{ config, lib, pkgs, ... }:
let
  cfg = config.artifacts;
  ocfg = cfg.openbao;
  openbao = import ../../nix-modules/lib/openbao.nix;
  defaultBackend = cfg.default.backend or null;
  fetched = openbao.fetched defaultBackend (cfg.store or { });
  manifestData = openbao.manifest {
    kind = "homemanager";
    name = cfg.userName;
    store = cfg.store or { };
    inherit defaultBackend;
    config = cfg.config or { };
    inherit (ocfg) roleIdFile secretIdFile address;
  };
  manifest = pkgs.writeText "artifacts-openbao-${cfg.userName}.json" (builtins.toJSON manifestData);
  fetch = {
    Unit.Description = "Fetch ${cfg.userName}'s artifacts from OpenBao";
    Service = {
      Type = "oneshot";
      ExecStart = openbao.execStart {
        artifacts = "${ocfg.package}/bin/artifacts";
        manifest = "${manifest}";
        kind = "homemanager";
        name = cfg.userName;
        inherit fetched;
      };
      # The ids are read, nothing else of the environment.
      UMask = "0077";
    };
  };
in
{
  imports = [ ../../nix-modules/home-backend-options.nix ];

  options.artifacts.openbao =
    import ../../nix-modules/openbao-options.nix {
      inherit lib;
      # Keep these defaults in sync with USER_ROLE_ID_FILE and
      # USER_SECRET_ID_FILE in crates/artifacts-backends/src/openbao.rs.
      roleIdFile = {
        default = "${config.xdg.configHome}/artifacts/openbao/role-id";
        defaultText = lib.literalExpression ''"''${config.xdg.configHome}/artifacts/openbao/role-id"'';
        description = "The file holding this user's AppRole role_id.";
      };
      secretIdFile = {
        default = "${config.xdg.configHome}/artifacts/openbao/secret-id";
        defaultText = lib.literalExpression ''"''${config.xdg.configHome}/artifacts/openbao/secret-id"'';
        description = "The file holding this user's AppRole secret_id (keep it 0400, readable by the user only).";
      };
    }
    // {
      manifest = lib.mkOption {
        # Not `anything`, which would walk into the derivation.
        type = lib.types.unspecified;
        readOnly = true;
        internal = true;
        default = {
          file = manifest;
          data = manifestData;
        };
        defaultText = lib.literalMD "the manifest file and its data";
        description = "The manifest `artifacts-openbao.service` reads, for debugging.";
      };
    };

  config = lib.mkIf (fetched != [ ]) {
    assertions = [
      {
        assertion = openbao.address { inherit (ocfg) address; config = cfg.config or { }; } != null;
        message = "artifacts: set artifacts.openbao.address (or artifacts.config.openbao.address) so user ${cfg.userName} can fetch their openbao artifacts";
      }
    ];
    systemd.user.services.artifacts-openbao = fetch // {
      Unit = fetch.Unit // {
        # At most 5 tries in 10 minutes (a minute apart): enough for a late network.
        StartLimitIntervalSec = 600;
        StartLimitBurst = 5;
      };
      Service = fetch.Service // {
        RemainAfterExit = true;
        Restart = "on-failure";
        RestartSec = "1min";
      };
      Install.WantedBy = [ "default.target" ];
    };
    systemd.user.services.artifacts-openbao-refresh = lib.mkIf ocfg.timer.enable fetch;
    systemd.user.timers.artifacts-openbao-refresh = lib.mkIf ocfg.timer.enable {
      Unit.Description = "Fetch ${cfg.userName}'s artifacts from OpenBao again";
      Timer = {
        OnCalendar = ocfg.timer.onCalendar;
        RandomizedDelaySec = "5m";
        Persistent = true;
      };
      Install.WantedBy = [ "timers.target" ];
    };
    # Each artifact's target (nix-modules/home-manager.nix) waits for the fetch.
    systemd.user.targets = builtins.listToAttrs (
      map (entry: {
        name = "artifacts-${entry.name}";
        value.Unit = {
          After = [ "artifacts-openbao.service" ];
          Requires = [ "artifacts-openbao.service" ];
        };
      }) fetched
    );
  };
}
