local words(n, w) = std.join(' ', [w for _ in std.range(1, n)]);
{
  cm: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: 'long',
      annotations: { description: words(30, 'lorem') },
    },
    data: {
      plain: words(40, 'ipsum'),
      double_spaced: words(20, 'a') + '  ' + words(30, 'b'),
      quoted: 'yes ' + words(30, 'quote') + ' \u0007',
      single: "it's " + words(30, 'single') + ': x',
      unbroken: std.join('', ['x' for _ in std.range(1, 120)]),
      [words(30, 'long-key')]: 'complex key',
      nested: { deeper: { deepest: words(25, 'deep') } },
      list: [words(25, 'item')],
    },
  },
}
