# The NixOS module of `artifacts`: the option tree (./options.nix) and one
# systemd target per artifact (./lib/targets.nix). Import a backend's module
# too (backends/<name>/module.nix: agenix, sops-nix, dummy) for the artifacts
# that use it; the flake's `nixosModules.default` imports all three.
{ config, lib, ... }:
let
  cfg = config.artifacts;
in
{
  imports = [ (import ./options.nix "nixos") ];

  config = lib.mkIf (cfg.store != { }) {
    systemd.targets = import ./lib/targets.nix {
      inherit (cfg) store;
      kind = "nixos";
      defaultBackend = cfg.default.backend;
    };
  };
}
