# dummy: one systemd oneshot per artifact whose backend is dummy, generating
# it on the machine at boot (`artifacts activate`). Pure (builtins only);
# used by backends/dummy/module.nix and tested by tests/e2e/nix.rs.
#
#   (import ./dummy.nix).services {
#     store;              # config.artifacts.store
#     machine;            # the machine name the CLI knows the target by
#     defaultBackend ? null;  # config.artifacts.default.backend
#     artifacts;          # the `artifacts` executable (a store path string)
#     manifest;           # the JSON manifest file of `manifest` below
#     before ? [ ];       # units that use the files: ordered after every artifact
#   }
#   => { "artifacts-<escaped name>" = { description; wantedBy; before; requires;
#                                        after; unitConfig; serviceConfig; }; … }
#
# Each service runs `artifacts --manifest M activate --target nixos/<machine> <artifact>`.
#
#   (import ./dummy.nix).manifest { store; machine; defaultBackend ? null; }
#   => { nixos = [ { machine; artifacts = { <dummy artifacts> }; config = { }; } ]; }
#   (fails when a dummy artifact depends on one that is not dummy)
#
# The services run before sysinit.target without default dependencies, so
# every ordinary service (which is ordered after sysinit.target) finds the
# files in place; `before` adds units that start earlier than that.
let
  common = import ./common.nix;

  dummyArtifacts =
    defaultBackend: store: common.artifactsUsing [ "dummy" ] defaultBackend store;

  hexDigits = [ "0" "1" "2" "3" "4" "5" "6" "7" "8" "9" "a" "b" "c" "d" "e" "f" ];
  hex = n: builtins.elemAt hexDigits (n / 16) + builtins.elemAt hexDigits (n - n / 16 * 16);
  # Printable ASCII outside [A-Za-z0-9:_.-], with their codes: what
  # `systemd-escape` turns into `\xNN`. (Names never contain `/` or control
  # characters: the CLI rejects them.)
  escaped = {
    " " = 32; "!" = 33; "\"" = 34; "#" = 35; "$" = 36; "%" = 37; "&" = 38;
    "'" = 39; "(" = 40; ")" = 41; "*" = 42; "+" = 43; "," = 44; ";" = 59;
    "<" = 60; "=" = 61; ">" = 62; "?" = 63; "@" = 64; "[" = 91; "\\" = 92;
    "]" = 93; "^" = 94; "`" = 96; "{" = 123; "|" = 124; "}" = 125; "~" = 126;
  };
in
rec {
  # An artifact name as a unit-name component, like `systemd-escape`
  # (a leading `.` is escaped too).
  unitEscape =
    name:
    let
      chars = builtins.attrNames escaped;
      body = builtins.replaceStrings chars (map (c: "\\x" + hex escaped.${c}) chars) name;
    in
    if builtins.substring 0 1 body == "." then
      "\\x2e" + builtins.substring 1 (-1) body
    else
      body;

  # One argument of ExecStart, quoted so that systemd passes it through
  # unchanged: no word splitting, no `%` specifiers, no `$` expansion.
  execArg =
    arg:
    "\"" + builtins.replaceStrings [ "\\" "\"" "%" "$" ] [ "\\\\" "\\\"" "%%" "$$" ] arg + "\"";

  manifest =
    {
      store,
      machine,
      defaultBackend ? null,
    }:
    let
      dummies = dummyArtifacts defaultBackend store;
      isDummy = name: builtins.any (entry: entry.name == name) dummies;
      # A dummy artifact's generator runs on the machine, where nothing
      # else is decryptable: its dependencies must be dummy too.
      foreign = builtins.concatMap (
        entry:
        map (dep: "`${entry.name}` depends on `${dep}`") (
          builtins.filter (dep: !isDummy dep) (entry.value.dependencies or [ ])
        )
      ) dummies;
    in
    if foreign != [ ] then
      throw "artifacts: on machine `${machine}`, dummy artifact ${builtins.head foreign}, which is not generated at activation; give both the dummy backend, or neither"
    else
    {
      nixos = [
        {
          inherit machine;
          artifacts = common.manifestArtifacts (_: "dummy") (dummyArtifacts defaultBackend store);
          config = { };
        }
      ];
    };

  services =
    {
      store,
      machine,
      defaultBackend ? null,
      artifacts,
      manifest,
      before ? [ ],
    }:
    let
      dummies = dummyArtifacts defaultBackend store;
      isDummy = name: builtins.any (entry: entry.name == name) dummies;
      unit = name: "artifacts-${unitEscape name}.service";
    in
    common.uniqueAttrs "systemd service" (
      map (entry: {
        name = "artifacts-${unitEscape entry.name}";
        value = {
          description = "Generate the artifact ${entry.name} (dummy backend)";
          wantedBy = [ "sysinit.target" ];
          before = [ "sysinit.target" ] ++ before;
          # Dependencies generated at activation come first (their files are
          # the generator's $in).
          requires = map unit (builtins.filter isDummy (entry.value.dependencies or [ ]));
          after = [ "local-fs.target" ] ++ map unit (builtins.filter isDummy (entry.value.dependencies or [ ]));
          unitConfig.DefaultDependencies = false;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            ExecStart = builtins.concatStringsSep " " (
              map execArg [
                artifacts
                "--manifest"
                manifest
                "activate"
                "--target"
                "nixos/${machine}"
                entry.name
              ]
            );
          };
        };
      }) dummies
    );
}
