// The artifacts-tanka ArgoCD config-management-plugin sidecar as a jsonnet
// library: the same objects as the kustomize overlay beside it
// (kustomization.yaml, repo-server-patch.yaml), for clusters whose ArgoCD is
// itself managed with jsonnet/tanka.
//
//   local sopsTanka = (import 'sops_tanka_plugin.libsonnet').new(
//     image='registry.example.com/artifacts:0.1.0',
//     keySecretName='artifacts-tanka-age-key',
//     allowList=['https://git.example.com/platform/shop-deploy.git'],
//   );
//   {
//     argocd: argocd { repoServer+: { deployment+: sopsTanka.repoServerMixin } },
//     sopsTanka: sopsTanka.configMaps,
//   }
//
// or apply `sopsTanka.objects` (the two ConfigMaps and the repo-server
// patch, for `kubectl patch`/server-side apply) next to a stock ArgoCD.
// The Secret `keySecretName` (key `age.txt`: the sidecar's age identity) is
// created by hand, never rendered from a repository: see README.md.
// plugin.yaml must sit beside this file (it is `artifacts cmp plugin-yaml`).
{
  new(
    image,
    keySecretName,
    allowList,
    namespace='argocd',
    name='artifacts-tanka',
    keyFile='age.txt',
    uid=999,
  ):: (
    assert std.isString(image) && image != '' : 'sops_tanka_plugin: image must be a non-empty string';
    assert std.isString(keySecretName) && keySecretName != '' : 'sops_tanka_plugin: keySecretName must be a non-empty string';
    assert std.isArray(allowList) && std.length(allowList) > 0 :
           'sops_tanka_plugin: allowList must list at least one repository URL (without one, any repository ArgoCD serves could have its secrets rendered)';
    assert std.length([
      u
      for u in allowList
      if !(std.isString(u) && u != '' && !std.startsWith(u, '#') && std.length(std.findSubstr('\n', u)) == 0 && std.stripChars(u, ' \t\r') == u)
    ]) == 0 : 'sops_tanka_plugin: each allowList entry must be one URL: no newlines, no surrounding spaces, no leading #';
    assert uid != 0 : 'sops_tanka_plugin: the sidecar must not run as root';

    local pluginName = name + '-plugin';
    local allowListName = name + '-allowlist';
    local keyVolume = name + '-age-key';
    local keyDir = '/plugin-secret';
    local allowDir = '/plugin-config';

    {
      local plugin = self,

      container:: {
        name: name,
        image: image,
        command: ['/var/run/argocd/argocd-cmp-server'],
        env: [
          { name: 'SOPS_AGE_KEY_FILE', value: keyDir + '/' + keyFile },
          { name: 'ARTIFACTS_CMP_ALLOWLIST', value: allowDir + '/allowed-repos' },
        ],
        securityContext: {
          runAsNonRoot: true,
          runAsUser: uid,
          runAsGroup: uid,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        },
        volumeMounts: [
          { name: 'var-files', mountPath: '/var/run/argocd' },
          { name: 'plugins', mountPath: '/home/argocd/cmp-server/plugins' },
          { name: name + '-tmp', mountPath: '/tmp' },
          {
            name: pluginName,
            mountPath: '/home/argocd/cmp-server/config/plugin.yaml',
            subPath: 'plugin.yaml',
          },
          { name: keyVolume, mountPath: keyDir, readOnly: true },
          { name: allowListName, mountPath: allowDir, readOnly: true },
        ],
      },

      volumes:: [
        { name: name + '-tmp', emptyDir: {} },
        { name: pluginName, configMap: { name: pluginName } },
        {
          name: keyVolume,
          secret: {
            secretName: keySecretName,
            defaultMode: 288,  // 0440
            items: [{ key: keyFile, path: keyFile }],
          },
        },
        { name: allowListName, configMap: { name: allowListName } },
      ],

      // The part of argocd-repo-server's pod spec this plugin adds.
      podSpec:: {
        securityContext: { fsGroup: uid },
        containers: [plugin.container],
        volumes: plugin.volumes,
      },

      // Mix into an argocd-repo-server Deployment object.
      repoServerMixin:: {
        spec+: { template+: { spec+: {
          securityContext+: { fsGroup: uid },
          containers+: [plugin.container],
          volumes+: plugin.volumes,
        } } },
      },

      configMaps:: {
        plugin: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: pluginName, namespace: namespace },
          data: { 'plugin.yaml': importstr 'plugin.yaml' },
        },
        allowList: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: allowListName, namespace: namespace },
          data: { 'allowed-repos': std.lines(allowList) },
        },
      },

      // A strategic-merge patch of the stock argocd-repo-server (what
      // repo-server-patch.yaml is).
      repoServerPatch:: {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'argocd-repo-server', namespace: namespace },
        spec: { template: { spec: plugin.podSpec } },
      },

      objects:: [plugin.configMaps.plugin, plugin.configMaps.allowList, plugin.repoServerPatch],
    }
  ),
}
