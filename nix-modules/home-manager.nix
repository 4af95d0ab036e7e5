# The Home Manager module of `artifacts`: the same option tree as NixOS
# (./options.nix, without owner, group and shared) and one user systemd
# target per artifact. The user is known to the CLI by its attribute name in
# `homeConfigurations` (`artifacts.userName`, default `home.username`).
{ config, lib, ... }:
let
  cfg = config.artifacts;
in
{
  imports = [ (import ./options.nix "homemanager") ];

  config = lib.mkIf (cfg.store != { }) {
    systemd.user.targets = lib.mapAttrs (_: target: {
      Unit = {
        Description = target.description;
        After = target.after;
        Requires = target.requires;
        AssertPathExists = target.unitConfig.AssertPathExists;
      };
      Install.WantedBy = target.wantedBy;
    }) (import ./lib/targets.nix {
      inherit (cfg) store;
      kind = "homemanager";
      defaultBackend = cfg.default.backend;
    });
  };
}
