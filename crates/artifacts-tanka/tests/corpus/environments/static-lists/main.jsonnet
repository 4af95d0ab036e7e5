local k = import 'k.libsonnet';
{
  list: { apiVersion: 'v1', kind: 'List', items: [k.cm('from-list-b'), k.cm('from-list-a'), k.obj('ServiceAccount', 'sa')] },
  cmlist: { apiVersion: 'v1', kind: 'ConfigMapList', items: [k.cm('cml-1')] },
  arrays: [[k.cm('nested-1'), [k.cm('nested-2')]], k.obj('Secret', 'in-array')],
  empty_list: { apiVersion: 'v1', kind: 'List', items: [] },
}
