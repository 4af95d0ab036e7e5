# One token for every machine declaring it.
{ pkgs, ... }:
{
  artifacts.store.cluster-token = {
    shared = true;
    files.token = { };
    generator = pkgs.writers.writeBash "cluster-token" ''
      ${pkgs.pwgen}/bin/pwgen -s 40 1 > "$out/token"
    '';
  };
}
