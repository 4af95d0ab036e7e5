local values = [
  'a\nb', 'a\nb\n', 'a\nb\n\n', '\n', '\n\n', '\nleading', ' indented\nx', 'trailing space \nx', 'x\n  y\n',
  'crlf\r\nline', 'cr\ronly', 'tab\tin\nblock', 'space \n', 'unicode ✓\nzwei', 'emoji 😀\nx', '#!/bin/sh\necho "hi"\n',
  '- a\n- b\n', 'key: value\nother: 1\n',
];
{
  cm: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'multiline', annotations: { 'multi\nline-key': 'v' } },
    data: { ['v%02d' % i]: values[i] for i in std.range(0, std.length(values) - 1) },
  },
  in_list: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'in-list' }, lines: ['one\ntwo', ['three\nfour\n']] },
}
