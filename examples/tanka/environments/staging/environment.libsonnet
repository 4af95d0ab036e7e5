// Staging: one replica, debug logging, an ingress, and a login gate in front
// of the whole site whose credentials only staging declares (artifact
// `basic-auth` in artifacts.toml).
local k = import 'k.libsonnet';
local shop = import 'shop.libsonnet';

function(secrets)
  local base = shop.new({
    image: 'ghcr.io/example/shop:1.5.0-rc.1',
    host: 'shop.staging.example.com',
    logLevel: 'debug',
    replicas: 1,
    queues: ['orders'],
  }, secrets);
  base {
    gate: k.secret('shop-gate', {
      username: secrets['basic-auth'].username,
      password: secrets['basic-auth'].password,
    }, type='kubernetes.io/basic-auth'),

    web+: {
      deployment+: {
        spec+: { template+: { spec+: { containers: [
          c { env+: [
            { name: 'GATE_USER', valueFrom: { secretKeyRef: { name: 'shop-gate', key: 'username' } } },
            { name: 'GATE_PASSWORD', valueFrom: { secretKeyRef: { name: 'shop-gate', key: 'password' } } },
          ] }
          for c in super.containers
        ] } } },
      },
      ingress: k.ingress('shop-web', 'shop.staging.example.com', 'shop-web'),
    },
  }
