# The NixOS options every shipped backend's module.nix needs, declared once:
# modules imported by path are deduplicated, so agenix, sops-nix and dummy can
# be imported together. The artifacts themselves (`artifacts.store`,
# `artifacts.config`, `artifacts.default.backend`) are declared by the main
# artifacts module. Home Manager's counterpart is ./home-backend-options.nix.
{ config, lib, ... }:
{
  imports = [ ./project-root.nix ];

  options.artifacts.machineName = lib.mkOption {
    type = lib.types.str;
    default = config.networking.hostName;
    defaultText = lib.literalExpression "config.networking.hostName";
    description = ''
      The one name of this machine, for the CLI and for this module alike:
      the `<m>` of `per-machine/<m>/` in the stores and of `--target nixos/<m>`.
      `artifacts --flake` reads it from each `nixosConfigurations` entry (so
      the attribute name does not matter), and two entries with the same
      name are an error. Set it here when `networking.hostName` is not the
      name you want.
    '';
  };
}
