local k = import 'k.libsonnet';
{
  clusters: {
    eu: k.env('cluster-eu-west', 'eu', { cm: k.cm('region', { region: 'eu-west' }) }),
    us: k.env('cluster-us-east', 'us', { cm: k.cm('region', { region: 'us-east' }) }),
  },
  // plain objects next to environments are dropped when --name selects
  stray: k.cm('stray'),
  number: 42,
}
