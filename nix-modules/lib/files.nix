# File defaults and public-file lookup, shared by the NixOS and Home Manager
# modules. Pure (builtins only), tested by tests/e2e/nix.rs.
# Keep the defaults in sync with crates/artifacts-model/src/load.rs and the
# public store layout with crates/artifacts-engine/src/public.rs.
rec {
  # The default path of a declared file.
  defaultPath =
    kind: artifact: file:
    if kind == "homemanager" then
      "$XDG_RUNTIME_DIR/artifacts/${artifact}/${file}"
    else
      "/run/artifacts/${artifact}/${file}";

  # Where the CLI writes a public file (`secret = false`), relative to the project root.
  publicPath =
    { kind, target, artifact, file, shared ? false }:
    if shared then
      "public/shared/${artifact}/${file}"
    else if kind == "homemanager" then
      "public/per-user/${target}/${artifact}/${file}"
    else
      "public/per-machine/${target}/${artifact}/${file}";

  # The public file in the project (a path), or an evaluation error naming
  # the command to run when it is missing.
  publicSource =
    { projectRoot, kind, target, artifact, file, shared ? false }:
    let
      relative = publicPath { inherit kind target artifact file shared; };
    in
    if projectRoot == null then
      throw "artifacts: set `artifacts.projectRoot` (e.g. `./.` in your flake) to read the public file `${file}` of artifact `${artifact}`"
    else if builtins.pathExists (projectRoot + "/${relative}") then
      projectRoot + "/${relative}"
    else
      throw "artifacts: public file `${relative}` of artifact `${artifact}` is missing; run `artifacts generate ${artifact}` in the project and commit `public/`";

  # The content of a public file, for `files.<f>.value`; `null` for a secret
  # file, so that dumping the whole tree (`nix eval --json`) works.
  publicValue =
    { projectRoot, kind, target, artifact, file, shared ? false, secret }:
    if secret then
      null
    else
      builtins.readFile (publicSource { inherit projectRoot kind target artifact file shared; });

  # Declared target paths that would put a secret into the world-readable store.
  pathsInStore =
    store:
    builtins.concatMap (
      artifact:
      builtins.concatMap (
        file:
        let
          path = (store.${artifact}.files.${file}.path or "");
        in
        if builtins.isString path && builtins.substring 0 11 path == "/nix/store/" then
          [ "artifacts.store.${artifact}.files.${file}.path = ${path}" ]
        else
          [ ]
      ) (builtins.attrNames (store.${artifact}.files or { }))
    ) (builtins.attrNames store);
}
