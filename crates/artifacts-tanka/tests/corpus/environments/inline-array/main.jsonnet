local k = import 'k.libsonnet';
[
  k.env('dev', 'dev-ns', { cm: k.cm('cfg', { env: 'dev' }) }),
  k.env('prod', 'prod-ns', { cm: k.cm('cfg', { env: 'prod' }), extra: k.cm('prod-only') }),
  // not selected: never evaluated
  k.env('broken', 'x', error 'the broken environment must not be evaluated'),
]
