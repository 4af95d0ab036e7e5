# NixOS side of the dummy backend: nothing is stored; each artifact whose
# backend is dummy gets a systemd oneshot `artifacts-<name>.service` that
# runs `artifacts activate` for it at boot (and on switch), before
# sysinit.target, so every ordinary service finds its files in place. The
# services and their manifest are built by nix-modules/lib/dummy.nix; the
# manifest is on `system.build.artifactsDummyManifest` for debugging.
{ config, lib, pkgs, ... }:
let
  cfg = config.artifacts;
  dummy = import ../../nix-modules/lib/dummy.nix;
  args = {
    store = cfg.store or { };
    machine = cfg.machineName;
    defaultBackend = cfg.default.backend or null;
  };
  manifest = pkgs.writeText "artifacts-dummy-${cfg.machineName}.json" (
    builtins.toJSON (dummy.manifest args)
  );
  services = dummy.services (
    args
    // {
      artifacts = "${cfg.dummy.package}/bin/artifacts";
      manifest = "${manifest}";
      inherit (cfg.dummy) before;
    }
  );
in
{
  imports = [ ../../nix-modules/backend-options.nix ];

  options.artifacts.dummy = {
    package = lib.mkOption {
      type = lib.types.package;
      description = "The package providing `bin/artifacts`, run by the activation services.";
    };
    before = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [ ];
      example = [ "systemd-tmpfiles-setup.service" ];
      description = ''
        Units that must start after every dummy artifact is in place, beyond
        the ordinary services (which already are, through sysinit.target).
      '';
    };
  };

  config = lib.mkIf (services != { }) {
    systemd.services = services;
    system.build.artifactsDummyManifest = manifest;
  };
}
