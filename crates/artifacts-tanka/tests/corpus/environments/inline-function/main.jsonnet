local k = import 'k.libsonnet';
function(region='eu', replicas=1)
  k.env('fn-' + region, 'fn-' + region, { app: k.deployment('fn', replicas) })
