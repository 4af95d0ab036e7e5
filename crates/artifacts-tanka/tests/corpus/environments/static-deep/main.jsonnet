local k = import 'k.libsonnet';
{
  level1: { level2: { level3: [{ level4: { cm: k.cm('deep-1') } }, [[k.cm('deep-2')]]] } },
  data: k.cm('deep-data') {
    tree: { a: [{ b: [{ c: [1, [2, [3, { d: 'e' }]]] }] }], f: { g: { h: { i: { j: 'k' } } } } },
  },
}
