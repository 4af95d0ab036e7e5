# agenix: the `age.secrets` entries of one target's artifacts whose backend is
# agenix. Pure (builtins only); used by backends/agenix/module.nix and tested
# by tests/e2e/nix.rs.
#
#   import ./agenix.nix {
#     store;              # config.artifacts.store
#     name;               # the machine (or user) name the CLI knows the target by
#     kind ? "nixos";     # or "homemanager" (no owner/group then)
#     config ? { };       # config.artifacts.config (agenix.storeDir is read)
#     defaultBackend ? null;  # config.artifacts.default.backend
#     projectRoot;        # the directory holding artifacts.toml / flake.nix, e.g. ./.
#   }
#   => { "<artifact>-<file>" = { file; path; owner; group; mode; }; … }
#
# `file` is `<projectRoot>/<storeDir>/per-machine/<machine>/<artifact>/<file>.age`
# (`shared/<artifact>/…` for shared artifacts): exactly where the CLI writes
# it. Public files (`secret = false`) get no entry.
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
  backendConfig = common.backendConfig [ "agenix" "sops-nix" ] config;
  # Built with `+`, never interpolated: a path stays a path, so only the
  # file agenix uses is copied to the store, not the whole directory.
  root = projectRoot + "/${common.storeDir backendConfig}";
  artifactDir =
    artifactName: artifact:
    if artifact.shared or false then
      root + "/shared/${artifactName}"
    else
      root + "/${common.kindDir kind}/${name}/${artifactName}";
  entries = artifact: builtins.map (file: {
    name = "${artifact.name}-${file.name}";
    value =
      {
        file = artifactDir artifact.name artifact.value + "/${file.name}.age";
        inherit (file.value) path mode;
      }
      // (if kind == "nixos" then { inherit (file.value) owner group; } else { });
  }) (common.secretFiles kind artifact.name artifact.value);
in
common.uniqueAttrs "age.secrets entry" (
  builtins.concatMap entries (common.artifactsUsing [ "agenix" ] defaultBackend store)
)
