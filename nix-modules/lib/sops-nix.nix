# sops-nix: the `sops.secrets` entries of one target's artifacts whose backend
# is sops-nix (or `sops`). Pure (builtins only); used by
# backends/sops-nix/module.nix and tested by tests/e2e/nix.rs.
#
#   import ./sops-nix.nix {
#     store;              # config.artifacts.store
#     name;               # the machine (or user) name the CLI knows the target by
#     kind ? "nixos";     # or "homemanager" (no owner/group then)
#     config ? { };       # config.artifacts.config (sops-nix.storeDir is read)
#     defaultBackend ? null;  # config.artifacts.default.backend
#     projectRoot;        # the directory holding artifacts.toml / flake.nix, e.g. ./.
#   }
#   => { "<artifact>/<file>" = { sopsFile; format; key; path; owner; group; mode; }; … }
#
# `sopsFile` is `<projectRoot>/<storeDir>/per-machine/<machine>.sops.yaml`
# (`shared/<artifact>.sops.yaml` for shared artifacts) and `key` is
# `<artifact>/<file>`: the file's value nested under the artifact, exactly
# as the CLI writes it; reading `sopsFile` is an evaluation error naming
# `artifacts generate <artifact>` when the file is missing. Home Manager paths
# under `$XDG_RUNTIME_DIR` are given as sops-nix's `%r`. Public files
# (`secret = false`) get no entry.
{
  store,
  name,
  kind ? "nixos",
  config ? { },
  defaultBackend ? null,
  projectRoot,
}:
let
  common = import ./common.nix;
  root = common.storeDir (common.backendConfig [ "sops-nix" "agenix" ] config);
  sopsFile =
    artifactName: artifact:
    common.storedFile projectRoot (
      if artifact.shared or false then
        "${root}/shared/${artifactName}.sops.yaml"
      else
        "${root}/${common.kindDir kind}/${name}.sops.yaml"
    ) artifactName;
  # sops-nix's Home Manager module replaces `%r` with $XDG_RUNTIME_DIR.
  runtimeDir = "$XDG_RUNTIME_DIR";
  userPath =
    path:
    let
      n = builtins.stringLength runtimeDir;
    in
    if kind == "homemanager" && builtins.substring 0 n path == runtimeDir then
      "%r" + builtins.substring n (-1) path
    else
      path;
  entry = artifactName: artifact: fileName: {
    name = "${artifactName}/${fileName}";
    value = {
      sopsFile = sopsFile artifactName artifact;
      format = "yaml";
      key = "${artifactName}/${fileName}";
    };
  };
in
builtins.mapAttrs (_: value: value // { path = userPath value.path; }) (
  common.uniqueAttrs "sops.secrets entry" (
    common.secretFileEntries kind entry (common.artifactsUsing [ "sops-nix" "sops" ] defaultBackend store)
  )
)
