local k = import 'k.libsonnet';
{
  cm: k.cm('empties') { spec: { m: {}, l: [], nested: { m: {}, l: [[], {}] } }, __ksonnet: { ignored: true } },
  off: null,
  group: { disabled: null, on: k.cm('enabled') },
  hidden:: k.cm('hidden'),
}
