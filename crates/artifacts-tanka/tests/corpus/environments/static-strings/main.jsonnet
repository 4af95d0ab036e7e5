// Strings go-yaml writes plain, quoted or escaped.
local values = [
  'plain words', 'yes', 'no', 'on', 'Off', 'y', 'N', 'true', 'False', 'null', '~', '',
  '8080', '-1', '+1', '0x1F', '0o17', '017', '08', '1_000', '1e3', '.5', '1.2.3', 'v1.2',
  '2024-01-02', '2024-1-2', '2024-02-30', '2024-01-02T10:20:30Z', '2024-01-02 10:20:30.5',
  '1:20', '1:20:30.5', '<<', '.inf', '-.Inf', '.nan',
  ': colon', 'key: value', 'a:b', 'a # not a comment', 'a#b', '#hash', '- dash', '-dash', '--', '---', '...x',
  '?q', '? q', '@at', '%pct', '*star', '&amp', '!bang', '|pipe', '>gt', '`tick', ',comma', '[br', '{br', 'a, b',
  "it's", '"quoted"', 'back\\slash', ' leading', 'trailing ', 'two  spaces',
  'grüße ✓ ünïcödé', 'tab\there', 'emoji 😀', 'nbsp\u00a0x', 'bell\u0007', 'esc\u001b', 'line\u2028sep', 'zero\u200bwidth',
];
{
  cm: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'strings' },
    data: { ['v%02d' % i]: values[i] for i in std.range(0, std.length(values) - 1) },
  },
  keys: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'keys' },
    data: { [v]: 'x' for v in ['yes', '8080', 'a: b', '', ' sp', 'it\'s', 'ü-key', 'tab\tkey'] },
  },
}
