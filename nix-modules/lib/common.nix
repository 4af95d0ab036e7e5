# Helpers shared by the backend helpers in this directory: which backend an
# artifact uses, its declared files with their defaults, and where the CLI
# stores things. Only `builtins`, so `nix-instantiate --eval` tests them
# without nixpkgs (tests/e2e/nix.rs).
#
# An artifacts store is the attrset of `config.artifacts.store` (or the
# `artifacts` of one target in the JSON the CLI reads):
#   { <artifact> = { shared ? false, backend ? null, serialization ? null,
#                    files = { <file> = { path ? …, owner ? "root", group ? "root",
#                                         mode ? "0400", secret ? true; }; };
#                    …; }; }
rec {
  # The artifact's backend: its `backend`, the legacy `serialization`, then
  # the target default. Mirrors artifacts-model's resolution (minus the
  # manifest default, which Nix configurations do not have).
  backendOf =
    defaultBackend: artifact:
    if (artifact.backend or null) != null then
      artifact.backend
    else if (artifact.serialization or null) != null then
      artifact.serialization
    else
      defaultBackend;

  # `[ { name, value } ]` of the store's artifacts whose backend is one of `names`,
  # sorted by name.
  artifactsUsing =
    names: defaultBackend: store:
    builtins.filter (entry: builtins.elem (backendOf defaultBackend entry.value) names) (
      map (name: {
        inherit name;
        value = store.${name};
      }) (builtins.attrNames store)
    );

  # `{ <artifact> = declaration; }` of `entries` (`[ { name, value } ]`) as
  # the JSON manifest the CLI reads on a machine (`artifacts --manifest M
  # activate`): only the keys it reads, the backend `backendFor` gives, and
  # of each file only where it goes. Not a file's `value`: a secret file's
  # is an evaluation error, and a public one's is not needed.
  manifestArtifacts =
    backendFor: entries:
    let
      pick = keys: attrs: builtins.intersectAttrs (builtins.listToAttrs (map (key: { name = key; value = null; }) keys)) attrs;
      declared = [ "name" "description" "shared" "backend" "serialization" "generator" "prompts" "files" "dependencies" ];
      fileKeys = [ "path" "owner" "group" "mode" "secret" ];
    in
    builtins.listToAttrs (
      map (entry: {
        inherit (entry) name;
        value = pick declared entry.value // {
          backend = backendFor entry.value;
          files = builtins.mapAttrs (_: pick fileKeys) (entry.value.files or { });
        };
      }) entries
    );

  # The default path of a file, as the CLI fills it in (one definition: ./files.nix).
  inherit (import ./files.nix) defaultPath;

  # `[ { name, value } ]` of an artifact's secret files (`secret` defaults to
  # true), sorted by name, with path, owner, group and mode filled in.
  # `null` values count as unset, as in the JSON the modules produce.
  secretFiles =
    kind: artifactName: artifact:
    let
      files = artifact.files or { };
      orDefault = value: default: if value == null then default else value;
      withDefaults = name: spec: {
        inherit name;
        value = {
          path = orDefault (spec.path or null) (defaultPath kind artifactName name);
          owner = orDefault (spec.owner or null) "root";
          group = orDefault (spec.group or null) "root";
          mode = orDefault (spec.mode or null) "0400";
        };
      };
    in
    builtins.filter (entry: (files.${entry.name}.secret or true) != false) (
      map (name: withDefaults name files.${name}) (builtins.attrNames files)
    );

  # `config.<backend>` of a target, taking the first namespace present, as
  # the CLI does (agenix reads agenix, then sops-nix; sops-nix the reverse).
  # Keep in sync with crates/artifacts-backends/src/lib.rs (config_keys).
  backendConfig =
    keys: config:
    let
      present = builtins.filter (key: (config.${key} or null) != null) keys;
    in
    if present == [ ] then { } else config.${builtins.head present};

  # One `{ name, value }` per secret file of `artifacts` (as `artifactsUsing`
  # gives them): `entry artifactName artifact fileName` gives the backend's
  # entry name and its own attributes; the declared path and mode (and owner
  # and group on NixOS) are added to them.
  secretFileEntries =
    kind: entry: artifacts:
    builtins.concatMap (
      artifact:
      map (
        file:
        let
          own = entry artifact.name artifact.value file.name;
        in
        {
          inherit (own) name;
          value =
            own.value
            // { inherit (file.value) path mode; }
            // (if kind == "nixos" then { inherit (file.value) owner group; } else { });
        }
      ) (secretFiles kind artifact.name artifact.value)
    ) artifacts;

  # A file the CLI wrote, `relative` to the project root: the path, or an
  # evaluation error naming the command that writes it. Built with `+`, never
  # interpolated: a path stays a path, so only the files a module uses are
  # copied to the Nix store, not the whole project.
  storedFile =
    projectRoot: relative: artifactName:
    let
      path = projectRoot + "/${relative}";
    in
    if builtins.pathExists path then
      path
    else
      throw "artifacts: `${relative}` of artifact `${artifactName}` is missing; run `artifacts generate ${artifactName}` in the project and commit it";

  # `storeDir`, relative to the project root (default `secrets`).
  storeDir = backendConfig: backendConfig.storeDir or "secrets";

  # The store's subdirectory of a target kind. Keep in sync with
  # crates/artifacts-backends/src/{agenix,sops}.rs.
  kindDir =
    kind:
    if kind == "nixos" then
      "per-machine"
    else if kind == "homemanager" then
      "per-user"
    else
      throw "artifacts: target kind `${kind}` is not `nixos` or `homemanager`";

  # Fails naming every attribute name produced twice, else returns `pairs`
  # as an attrset.
  uniqueAttrs =
    what: pairs:
    let
      names = map (pair: pair.name) pairs;
      count = name: builtins.length (builtins.filter (other: other == name) names);
      twice = builtins.filter (name: count name > 1) names;
    in
    if twice == [ ] then
      builtins.listToAttrs pairs
    else
      throw "artifacts: ${what} `${builtins.head twice}` would be defined twice; rename an artifact or a file";
}
