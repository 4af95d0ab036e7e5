local k = import 'k.libsonnet';
function(replicas, image='nginx', tags=[]) {
  deploy: k.deployment('tla', replicas) { metadata+: { annotations: { image: image, tags: std.join(',', tags) } } },
}
