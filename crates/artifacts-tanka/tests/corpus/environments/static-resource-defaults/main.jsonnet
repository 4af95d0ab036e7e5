local k = import 'k.libsonnet';
{
  plain: k.cm('plain'),
  overrides: k.cm('overrides') { metadata+: { labels: { team: 'web' }, annotations: { owner: 'dev' } } },
}
