// Small constructors shared by the corpus environments.
{
  cm(name, data={}):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name }, data: data },
  obj(kind, name, apiVersion='v1'):: { apiVersion: apiVersion, kind: kind, metadata: { name: name } },
  deployment(name, replicas=1):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: name, labels: { app: name } },
    spec: {
      replicas: replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: name, image: 'nginx:1.25', ports: [{ containerPort: 8080, name: 'http' }] }] },
      },
    },
  },
  env(name, namespace, data, spec={}):: {
    apiVersion: 'tanka.dev/v1alpha1',
    kind: 'Environment',
    metadata: { name: name },
    spec: { apiServer: 'https://localhost', namespace: namespace } + spec,
    data: data,
  },
}
