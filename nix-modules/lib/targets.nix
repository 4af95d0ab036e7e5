# Per-artifact systemd targets: `artifacts-<name>.target` is reached once the
# artifact's files are in place, whichever backend deploys them, so services
# can `BindsTo=`/`After=` it. Pure (builtins only), tested by tests/e2e/nix.rs.
#
#   import ./targets.nix { store; kind ? "nixos"; defaultBackend ? null; }
#   => { "artifacts-<name>" = { description; wantedBy; after; requires; unitConfig.AssertPathExists; }; … }
#
# Dummy artifacts are installed by `artifacts-<name>.service` (backends/dummy),
# and openbao ones by `artifacts-openbao.service` (backends/openbao), so
# their target requires and follows that. agenix and sops-nix install the
# secret files, and the artifacts module the public ones (./public.nix),
# during activation, before any unit starts. Home Manager paths use
# systemd's `%t` for `$XDG_RUNTIME_DIR`.
{
  store,
  kind ? "nixos",
  defaultBackend ? null,
}:
let
  common = import ./common.nix;
  files = import ./files.nix;
  systemdPath =
    path:
    let
      prefix = "$XDG_RUNTIME_DIR";
      n = builtins.stringLength prefix;
    in
    if builtins.substring 0 n path == prefix then
      "%t" + builtins.substring n (builtins.stringLength path - n) path
    else
      path;
  pathsOf =
    name: artifact:
    map (
      file: systemdPath (
        let
          declared = artifact.files.${file}.path or null;
        in
        if declared == null then files.defaultPath kind name file else declared
      )
    ) (builtins.attrNames (artifact.files or { }));
  target =
    name: artifact:
    let
      backend = common.backendOf defaultBackend artifact;
      service =
        if backend == "dummy" then
          [ "artifacts-${name}.service" ]
        else if kind == "nixos" && builtins.elem backend [ "openbao" "vault" ] then
          # Fetched by backends/openbao/module.nix.
          [ "artifacts-openbao.service" ]
        else
          [ ];
    in
    {
      description = "Files of artifact ${name} in place";
      wantedBy = [ (if kind == "nixos" then "multi-user.target" else "default.target") ];
      after = service;
      requires = service;
      unitConfig.AssertPathExists = pathsOf name artifact;
    };
in
builtins.listToAttrs (
  map (name: {
    name = "artifacts-${name}";
    value = target name store.${name};
  }) (builtins.attrNames store)
)
