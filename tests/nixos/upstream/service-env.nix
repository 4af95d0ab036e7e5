# A service's environment file, generated once and owned by the service user.
{ config, pkgs, ... }:
{
  artifacts.store.vaultwarden = {
    files.env = {
      owner = "vaultwarden";
      group = "vaultwarden";
      path = "/var/lib/vaultwarden/secrets.env";
    };
    generator = pkgs.writers.writeBash "vaultwarden-env" ''
      echo "ADMIN_TOKEN=$(${pkgs.openssl}/bin/openssl rand -hex 32)" > "$out/env"
    '';
  };

  services.vaultwarden = {
    enable = true;
    environmentFile = config.artifacts.store.vaultwarden.files.env.path;
  };
}
