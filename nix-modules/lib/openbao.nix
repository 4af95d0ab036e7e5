# openbao: what the NixOS and Home Manager sides of the openbao backend
# share (backends/openbao/module.nix and home-manager.nix): which artifacts
# a target fetches, the manifest its fetch service reads, and the service's
# ExecStart. Pure (builtins only).
#
#   (import ./openbao.nix).fetched defaultBackend store
#   => [ { name, value } ] of the artifacts whose backend is openbao or vault
#
#   (import ./openbao.nix).manifest {
#     kind;               # "nixos" or "homemanager"
#     name;               # artifacts.machineName / artifacts.userName
#     store; defaultBackend ? null; config ? { };   # config.artifacts.{store,default.backend,config}
#     roleIdFile; secretIdFile; address ? null;     # config.artifacts.openbao.*
#   }
#   => { nixos = [ { machine; artifacts; config.openbao; } ]; }
#      (or { home = [ { user; … } ]; }: the JSON `artifacts --manifest` reads)
#
#   (import ./openbao.nix).execStart { artifacts; manifest; kind; name; fetched; }
#   => "\"<artifacts>\" \"--manifest\" \"<manifest>\" \"activate\" \"--target\" \"<kind>/<name>\" \"<artifact>\" …"
let
  common = import ./common.nix;
  dummy = import ./dummy.nix;
in
rec {
  # The backend's two names. Keep in sync with crates/artifacts-backends (openbao, alias vault).
  names = [ "openbao" "vault" ];

  fetched = defaultBackend: store: common.artifactsUsing names defaultBackend store;

  # The server the target fetches from: the module's `address`, else
  # `artifacts.config.openbao.address` (or `.vault`); null when neither.
  address =
    { address ? null, config ? { } }:
    if address != null then address else config.openbao.address or config.vault.address or null;

  manifest =
    {
      kind,
      name,
      store,
      defaultBackend ? null,
      config ? { },
      roleIdFile,
      secretIdFile,
      address ? null,
    }:
    let
      nixos = kind == "nixos";
    in
    {
      ${if nixos then "nixos" else "home"} = [
        {
          ${if nixos then "machine" else "user"} = name;
          artifacts = common.manifestArtifacts (common.backendOf defaultBackend) (fetched defaultBackend store);
          config.openbao =
            (config.openbao or { })
            // (config.vault or { })
            // {
              inherit roleIdFile secretIdFile;
            }
            // (if address != null then { inherit address; } else { });
        }
      ];
    };

  execStart =
    {
      artifacts,
      manifest,
      kind,
      name,
      fetched,
    }:
    builtins.concatStringsSep " " (
      map dummy.execArg (
        [
          artifacts
          "--manifest"
          manifest
          "activate"
          "--target"
          "${kind}/${name}"
        ]
        ++ map (entry: entry.name) fetched
      )
    );
}
