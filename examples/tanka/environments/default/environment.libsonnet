// The environment's objects as a function of its parsed secrets (kept apart
// from main.jsonnet so plain `jsonnet`, which lacks tanka's
// std.native('parseYaml'), can evaluate it too: see scripts/bench-tanka).
local shop = import 'shop.libsonnet';

function(secrets)
  shop.new({
    image: 'ghcr.io/example/shop:1.4.2',
    host: 'shop.example.com',
    logLevel: 'info',
    replicas: 3,
    queues: ['orders', 'mail'],
  }, secrets)
