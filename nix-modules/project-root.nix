# `artifacts.projectRoot`, declared once for NixOS and Home Manager (a module
# imported by path is deduplicated, so every module needing it imports it).
{ lib, ... }:
{
  options.artifacts.projectRoot = lib.mkOption {
    type = lib.types.nullOr lib.types.path;
    default = null;
    example = lib.literalExpression "./.";
    description = ''
      The directory holding the project's `artifacts.toml` or `flake.nix`:
      where `artifacts` writes the stores (`artifacts.config.<backend>.storeDir`,
      default `secrets`, is relative to it) and the public files (`public/`).
      In a flake, `./.` or `self`. Required when an artifact uses agenix or
      sops-nix, or declares a public file. It is not part of
      `artifacts.config`, because that is handed to the CLI as JSON, which
      would copy the directory into the Nix store.
    '';
  };
}
