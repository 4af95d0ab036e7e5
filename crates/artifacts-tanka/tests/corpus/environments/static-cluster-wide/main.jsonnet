local k = import 'k.libsonnet';
{
  ns: k.obj('Namespace', 'cw'),
  pc: k.obj('PriorityClass', 'high', 'scheduling.k8s.io/v1'),
  sc: k.obj('StorageClass', 'fast', 'storage.k8s.io/v1'),
  // tanka lists no cert-manager kinds: a ClusterIssuer gets the namespace
  issuer: k.obj('ClusterIssuer', 'letsencrypt', 'cert-manager.io/v1'),
  forced_off: k.obj('Widget', 'global', 'example.com/v1') { metadata+: { annotations: { 'tanka.dev/namespaced': 'false' } } },
  forced_on: k.obj('ClusterRole', 'namespaced-role', 'rbac.authorization.k8s.io/v1') { metadata+: { annotations: { 'tanka.dev/namespaced': 'true' } } },
  empty_annotations: k.cm('empty-annotations') { metadata+: { annotations: {} } },
  null_annotations: k.cm('null-annotations') { metadata+: { annotations: null } },
  own_ns: k.cm('own') { metadata+: { namespace: 'mine' } },
}
