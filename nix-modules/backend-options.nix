# Options every shipped backend's module.nix needs, declared once: modules
# imported by path are deduplicated, so agenix, sops-nix and dummy can be
# imported together. The artifacts themselves (`artifacts.store`,
# `artifacts.config`, `artifacts.default.backend`) are declared by the main
# artifacts module.
{ config, lib, ... }:
{
  options.artifacts = {
    projectRoot = lib.mkOption {
      type = lib.types.nullOr lib.types.path;
      default = null;
      example = lib.literalExpression "./.";
      description = ''
        The directory holding the project's `artifacts.toml` or `flake.nix`:
        where `artifacts` writes the stores (`artifacts.config.<backend>.storeDir`,
        default `secrets`, is relative to it). In a flake, `./.` or `self`.
        Required when an artifact of this machine uses agenix or sops-nix.
        It is not part of `artifacts.config`, because that is handed to the
        CLI as JSON, which would copy the directory into the Nix store.
      '';
    };
    machineName = lib.mkOption {
      type = lib.types.str;
      default = config.networking.hostName;
      defaultText = lib.literalExpression "config.networking.hostName";
      description = ''
        The name `artifacts` knows this machine by: its attribute in
        `nixosConfigurations` (the `<m>` of `per-machine/<m>/` in the stores).
      '';
    };
  };
}
