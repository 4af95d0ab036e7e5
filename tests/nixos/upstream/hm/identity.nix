# A key placed in the home directory.
{ config, pkgs, ... }:
{
  artifacts.store.passage = {
    files.identities.path = "${config.home.homeDirectory}/.passage/identities";
    generator = pkgs.writers.writeBash "passage-identities" ''
      ${pkgs.age}/bin/age-keygen > "$out/identities"
    '';
  };
}
