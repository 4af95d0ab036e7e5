local k = import 'k.libsonnet';
k.env('listed', 'listed-ns', {
  list: { apiVersion: 'v1', kind: 'List', items: [k.cm('one'), k.cm('two') { metadata+: { labels: { team: 'own' } } }] },
}, { resourceDefaults: { labels: { team: 'default-team' }, annotations: { note: 'from inline spec' } } })
