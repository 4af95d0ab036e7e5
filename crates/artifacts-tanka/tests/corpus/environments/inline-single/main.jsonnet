local k = import 'k.libsonnet';
k.env('single', 'inline-ns', {
  app: k.deployment('inline-app'),
  cm: k.cm('inline-cm', { greeting: 'hello' }),
  ns: k.obj('Namespace', 'inline-ns'),
}, { injectLabels: true })
