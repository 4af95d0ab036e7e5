// The tanka entry point. secrets_yaml is environments/default/secrets.sops.yaml
// decrypted (`artifacts tanka show`, `artifacts cmp generate`, or
// `sops -d … | tk show --tla-str-file secrets_yaml=/dev/stdin …`).
function(secrets_yaml)
  (import 'environment.libsonnet')(std.native('parseYaml')(secrets_yaml)[0])
