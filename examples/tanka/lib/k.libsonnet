// Minimal Kubernetes constructors, so the example needs no vendor/
// (a real project would use k8s-libsonnet from `jb install`).
{
  configMap(name, data):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: name },
    data: data,
  },

  secret(name, stringData, type='Opaque'):: {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: name },
    type: type,
    stringData: stringData,
  },

  container(name, image, port=null):: {
    name: name,
    image: image,
    [if port != null then 'ports']: [{ name: 'http', containerPort: port }],
  },

  deployment(name, containers, replicas=1, annotations={}):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: name, labels: { app: name } },
    spec: {
      replicas: replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: annotations },
        spec: { containers: containers },
      },
    },
  },

  service(name, port):: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: name, labels: { app: name } },
    spec: {
      selector: { app: name },
      ports: [{ name: 'http', port: 80, targetPort: port }],
    },
  },

  ingress(name, host, service, annotations={}):: {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: name, annotations: annotations },
    spec: {
      rules: [{
        host: host,
        http: { paths: [{
          path: '/',
          pathType: 'Prefix',
          backend: { service: { name: service, port: { name: 'http' } } },
        }] },
      }],
    },
  },
}
