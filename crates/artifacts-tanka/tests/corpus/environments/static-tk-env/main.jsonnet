local tk = import 'tk';
local k = import 'k.libsonnet';
{
  cm: k.cm('tk-env', {
    name: tk.env.metadata.name,
    entry: tk.env.metadata.namespace,
    namespace: tk.env.spec.namespace,
    server: tk.env.spec.apiServer,
    label: std.extVar('tanka.dev/environment').spec.resourceDefaults.labels.from,
  }),
}
