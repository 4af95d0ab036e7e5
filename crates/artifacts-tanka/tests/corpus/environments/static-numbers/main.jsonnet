{
  cm: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'numbers' },
    values: {
      zero: 0, one: 1, negative: -3, half: 0.5, small: 0.0001, smaller: 0.00001, tiny: 1.5e-7,
      hundred_thousand: 100000, million: 1000000, big: 123456789, huge: 1e21, float_sum: 0.1 + 0.2,
      third: 1 / 3, port: 8080, neg_float: -2.25, exp: 6.02e23, bool_t: true, bool_f: false, nothing: null,
    },
  },
}
