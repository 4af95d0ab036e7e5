# The Home Manager options every backend's home-manager.nix needs, declared
# once (imported by path, so deduplicated). NixOS's counterpart is
# ./backend-options.nix; Home Manager has no `networking`, so nothing here
# reads it.
{ config, lib, ... }:
{
  imports = [ ./project-root.nix ];

  options.artifacts.userName = lib.mkOption {
    type = lib.types.str;
    default = config.home.username;
    defaultText = lib.literalExpression "config.home.username";
    description = ''
      The one name of this user, for the CLI and for this module alike: the
      `<u>` of `per-user/<u>/` in the stores and of `--target home/<u>`.
      `artifacts --flake` reads it from each `homeConfigurations` entry (so
      the attribute name, often `user@host`, does not matter), and two
      entries with the same name are an error. Set it when one person has
      several configurations with different secrets.
    '';
  };
}
