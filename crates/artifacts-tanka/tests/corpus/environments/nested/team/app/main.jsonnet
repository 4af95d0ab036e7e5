local k = import 'k.libsonnet';
{ cm: k.cm('nested', { path: 'environments/nested/team/app' }) }
