// secrets_yaml: the decrypted environments/default/secrets.sops.yaml,
// keys `<artifact>: {<file>: value}` as the sops backend writes them.
local app = import 'app.libsonnet';

function(secrets_yaml)
  local secrets = std.native('parseYaml')(secrets_yaml)[0];
  {
    db: app.secret('db', { DB_PASSWORD: secrets['db-password'].password }),
    web: app.deployment('web', 'nginx:1.27', 'db', std.extVar('commit_hash')),
  }
