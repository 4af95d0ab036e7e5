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
# it; reading it is an evaluation error naming `artifacts generate <artifact>`
# when the file is missing. Public files (`secret = false`) get no entry.
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
  root = common.storeDir (common.backendConfig [ "agenix" "sops-nix" ] config);
  artifactDir =
    artifactName: artifact:
    if artifact.shared or false then
      "${root}/shared/${artifactName}"
    else
      "${root}/${common.kindDir kind}/${name}/${artifactName}";
  entry = artifactName: artifact: fileName: {
    name = "${artifactName}-${fileName}";
    value.file = common.storedFile projectRoot "${artifactDir artifactName artifact}/${fileName}.age" artifactName;
  };
in
common.uniqueAttrs "age.secrets entry" (
  common.secretFileEntries kind entry (common.artifactsUsing [ "agenix" ] defaultBackend store)
)
