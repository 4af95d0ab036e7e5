local k = import 'k.libsonnet';
{
  with_labels: k.cm('with-labels') { metadata+: { labels: { keep: 'me' } } },
  without: k.cm('without'),
  ns: k.obj('Namespace', 'labelled'),
}
