{ cm: (import 'k.libsonnet').cm('fields') }
