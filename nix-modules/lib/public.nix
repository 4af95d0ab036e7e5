# Public files (`secret = false`) to install on a target: every public file
# of an artifact whose backend stores it (all but `dummy`, whose files
# `artifacts activate` writes on the machine), taken from the project's
# public store. They are not secret, so the Nix store may hold them; the
# modules install them at their declared path with their owner, group and
# mode during activation, which is what makes `artifacts-<name>.target`'s
# AssertPathExists hold. Pure (builtins only), tested by tests/e2e/nix.rs.
#
#   import ./public.nix {
#     store;              # config.artifacts.store
#     name;               # the machine (or user) name the CLI knows the target by
#     kind ? "nixos";     # or "homemanager" (no owner/group then)
#     defaultBackend ? null;  # config.artifacts.default.backend
#     projectRoot;        # the directory holding artifacts.toml / flake.nix
#   }
#   => [ { artifact; file; path; owner; group; mode; source; } … ]  (sorted)
#
# `source` is the file in the project (`public/per-machine/<m>/<a>/<f>`, a
# path); reading it is an evaluation error naming `artifacts generate <a>`
# when it is missing.
{
  store,
  name,
  kind ? "nixos",
  defaultBackend ? null,
  projectRoot,
}:
let
  common = import ./common.nix;
  files = import ./files.nix;
  orDefault = value: default: if value == null then default else value;
  stored = builtins.filter (entry: common.backendOf defaultBackend entry.value != "dummy") (
    map (artifact: {
      name = artifact;
      value = store.${artifact};
    }) (builtins.attrNames store)
  );
in
builtins.concatMap (
  artifact:
  let
    declared = artifact.value.files or { };
  in
  map (
    file:
    let
      spec = declared.${file};
    in
    {
      artifact = artifact.name;
      inherit file;
      path = orDefault (spec.path or null) (files.defaultPath kind artifact.name file);
      owner = orDefault (spec.owner or null) "root";
      group = orDefault (spec.group or null) "root";
      mode = orDefault (spec.mode or null) "0400";
      source = files.publicSource {
        inherit projectRoot kind file;
        target = name;
        artifact = artifact.name;
        shared = artifact.value.shared or false;
      };
    }
  ) (builtins.filter (file: (declared.${file}.secret or true) == false) (builtins.attrNames declared))
) stored
