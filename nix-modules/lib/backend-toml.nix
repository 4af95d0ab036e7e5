# The backend.toml text of `lib.mkBackend`, from upstream nixos-artifacts'
# argument names plus ours (deserialize, tanka, list/remove). Pure (builtins
# only), tested by tests/e2e/nix.rs. Script values are file names relative to
# the backend.toml (mkBackend copies the scripts next to it).
#
#   import ./backend-toml.nix {
#     name;
#     nixos_enabled ? true; nixos_check ? null; nixos_serialize ? null; nixos_deserialize ? null;
#     home_enabled ? true;  home_check ? null;  home_serialize ? null;  home_deserialize ? null;
#     shared_enabled ? true; shared_check ? null; shared_serialize ? null; shared_deserialize ? null;
#     tanka_enabled ? false; tanka_check ? null; tanka_serialize ? null; tanka_deserialize ? null;
#   }
#   => "[name.nixos]\ncheck = \"./nixos_check\"\n…"
args:
let
  name = args.name;
  quote = text: builtins.toJSON text;
  section =
    kind:
    let
      get = key: args."${kind}_${key}" or null;
      enabled = args."${kind}_enabled" or (kind != "tanka");
      scripts = builtins.filter (key: get key != null) [ "check" "serialize" "deserialize" "list" "remove" ];
      lines = map (key: "${key} = ${quote "./${kind}_${key}"}") scripts;
    in
    if (get "check" == null) != (get "serialize" == null) then
      throw "mkBackend ${name}: ${kind}_check and ${kind}_serialize come as a pair"
    # A section without scripts is a passthrough: only when asked for with `<kind>_enabled = true`.
    else if scripts == [ ] && !(enabled && args ? "${kind}_enabled") then
      ""
    else
      "[${quote name}.${kind}]\nenabled = ${if enabled then "true" else "false"}\n"
      + builtins.concatStringsSep "" (map (line: line + "\n") lines)
      + "\n";
in
builtins.concatStringsSep "" (map section [ "nixos" "home" "shared" "tanka" ])
