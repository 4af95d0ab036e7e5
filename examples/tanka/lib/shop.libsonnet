// The example application: a web frontend, a worker and their secrets.
// `new(config, secrets)` returns nested objects and lists; tanka (and
// `artifacts tanka show`) finds every object with apiVersion and kind in it.
//
// `secrets` is the parsed secrets_yaml: `<artifact>: {<file>: value}`, as the
// sops backend writes environments/<env>/secrets.sops.yaml.
local k = import 'k.libsonnet';

{
  new(config, secrets):: {
    local commit = std.extVar('commit_hash'),
    local secretEnv(secretName, key, env) = {
      name: env,
      valueFrom: { secretKeyRef: { name: secretName, key: key } },
    },

    config: k.configMap('shop-config', {
      LOG_LEVEL: config.logLevel,
      PUBLIC_URL: 'https://%s/' % config.host,
    }),

    secrets: {
      db: k.secret('shop-db', { password: secrets.db.password }),
      api: k.secret('shop-api', { token: secrets['api-token'].token }),
    },

    web: {
      deployment: k.deployment(
        'shop-web',
        [k.container('web', config.image, port=8080) {
          envFrom: [{ configMapRef: { name: 'shop-config' } }],
          env: [
            secretEnv('shop-db', 'password', 'DB_PASSWORD'),
            secretEnv('shop-api', 'token', 'API_TOKEN'),
          ],
        }],
        replicas=config.replicas,
        annotations={ 'example.com/commit': commit },
      ),
      service: k.service('shop-web', 8080),
    },

    // A list works as well as an object.
    workers: [
      k.deployment(
        'shop-worker-%s' % queue,
        [k.container('worker', config.image) {
          args: ['worker', '--queue', queue],
          env: [secretEnv('shop-db', 'password', 'DB_PASSWORD')],
        }],
        annotations={ 'example.com/commit': commit },
      )
      for queue in config.queues
    ],
  },
}
