local keys = ['a1', 'a10', 'a2', 'a01', 'a001', 'a0', 'B', 'a', 'b', '_x', '-x', '1', '10', '2', '01', 'x.y', 'x/y', 'a_b', 'a-b', 'Z', 'z9z', 'z10z', 'z09z', 'k8s', 'k08s', 'abc', 'ab', 'ä', 'ß1'];
{
  cm: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'keys' },
    data: { [key]: key for key in keys },
  },
}
