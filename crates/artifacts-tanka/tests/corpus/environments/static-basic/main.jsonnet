local k = import 'k.libsonnet';
{
  frontend: {
    deployment: k.deployment('frontend', 2),
    service: k.obj('Service', 'frontend') { spec: { ports: [{ port: 80, targetPort: 'http' }], selector: { app: 'frontend' } } },
    config: k.cm('frontend', { 'nginx.conf': 'worker_processes 1;', level: 'info' }),
  },
  backend: {
    deployment: k.deployment('backend', 3),
    other: k.cm('backend') { metadata+: { namespace: 'other' } },
  },
}
