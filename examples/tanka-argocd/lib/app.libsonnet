// Tiny helpers instead of k8s-libsonnet, so the example has no vendor/.
{
  secret(name, data):: {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: name },
    type: 'Opaque',
    stringData: data,
  },

  deployment(name, image, secretName, commit):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: name, annotations: { 'example.com/commit': commit } },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [{
            name: name,
            image: image,
            envFrom: [{ secretRef: { name: secretName } }],
          }],
        },
      },
    },
  },
}
