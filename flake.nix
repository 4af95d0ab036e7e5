{
  description = "artifacts: declare secrets once; store them with agenix, sops-nix, a dummy, or any backend";

  # Only nixpkgs: agenix, sops-nix and home-manager are the user's own inputs
  # (their modules are imported next to ours), so this flake forces no versions.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      inherit (nixpkgs) lib;
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      packageFor = pkgs: self.packages.${pkgs.stdenv.hostPlatform.system}.artifacts;
    in
    {
      packages = forAllSystems (pkgs: {
        artifacts = pkgs.rustPlatform.buildRustPackage {
          pname = "artifacts";
          version = (lib.importTOML ./Cargo.toml).workspace.package.version;
          src = lib.cleanSource self;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "-p" "artifacts-cli" ];
          nativeBuildInputs = [ pkgs.makeWrapper pkgs.installShellFiles ];
          # The test suite runs real bwrap, age, sops, nix and jsonnet; it runs
          # with scripts/test, not inside the build sandbox.
          doCheck = false;
          postInstall = ''
            wrapProgram $out/bin/artifacts --prefix PATH : ${lib.makeBinPath [ pkgs.bubblewrap ]}
            installShellCompletion --cmd artifacts \
              --bash <($out/bin/artifacts completions bash) \
              --zsh <($out/bin/artifacts completions zsh) \
              --fish <($out/bin/artifacts completions fish)
            # artifacts(1), artifacts-COMMAND(1) and artifacts.toml(5).
            $out/bin/artifacts man --dir $out/share/man
          '';
          meta = {
            description = "Declare secrets once; generate, store and check them through pluggable backends";
            mainProgram = "artifacts";
            license = lib.licenses.mit;
          };
        };
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.artifacts;
      });

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe (packageFor pkgs);
        };
      });

      nixosModules = {
        # The option tree, the per-artifact systemd targets and the dummy
        # backend. Import `agenix` / `sops-nix` below next to agenix's or
        # sops-nix's own module when artifacts use them.
        default =
          { pkgs, ... }:
          {
            imports = [
              ./nix-modules/nixos.nix
              ./backends/dummy/module.nix
            ];
            artifacts.dummy.package = lib.mkDefault (packageFor pkgs);
          };
        artifacts = ./nix-modules/nixos.nix;
        agenix = ./backends/agenix/module.nix;
        sops-nix = ./backends/sops-nix/module.nix;
        dummy = ./backends/dummy/module.nix;
        # Set `artifacts.openbao.package` (e.g. to this flake's package).
        openbao = ./backends/openbao/module.nix;
      };

      # Home Manager: the option tree and user targets, and the backends'
      # Home Manager sides (import agenix's or sops-nix's own Home Manager
      # module next to theirs; openbao needs none). `homeModules` is the
      # name upstream nixos-artifacts and current Home Manager use.
      homeModules = {
        default = ./nix-modules/home-manager.nix;
        artifacts = ./nix-modules/home-manager.nix;
        agenix = ./backends/agenix/home-manager.nix;
        sops-nix = ./backends/sops-nix/home-manager.nix;
        # The user fetches their own secrets with their AppRole; set
        # `artifacts.openbao.package` (e.g. to this flake's package).
        openbao = ./backends/openbao/home-manager.nix;
      };
      homeManagerModules = self.homeModules;

      lib = {
        # A backend as a directory holding backend.toml and its scripts, with
        # upstream nixos-artifacts' argument names (plus *_deserialize and tanka_*).
        mkBackend =
          {
            pkgs ? null,
            system ? null,
            name,
            ...
          }@args:
          let
            actualPkgs =
              if pkgs != null then
                pkgs
              else if system != null then
                nixpkgs.legacyPackages.${system}
              else
                throw "mkBackend ${name}: pass `pkgs` or `system`";
            scripts = lib.filterAttrs (
              key: value: value != null && builtins.match ".*_(check|serialize|deserialize|list|remove)" key != null
            ) args;
            toml = import ./nix-modules/lib/backend-toml.nix (
              builtins.removeAttrs args [ "pkgs" "system" "settings" ]
            );
          in
          actualPkgs.runCommand "artifacts-backend-${name}" { } ''
            mkdir -p $out
            cp ${actualPkgs.writeText "backend.toml" toml} $out/backend.toml
            ${lib.concatStringsSep "\n" (
              lib.mapAttrsToList (key: script: "install -m 0755 ${script} $out/${key}") scripts
            )}
          '';

        # The `artifacts` command with these backends preconfigured
        # (NIXOS_ARTIFACTS_BACKEND_CONFIG points at a backend.toml including them).
        mkArtifactCli =
          {
            pkgs ? null,
            system ? null,
            backends ? [ ],
          }:
          let
            actualPkgs = if pkgs != null then pkgs else nixpkgs.legacyPackages.${system};
            config = actualPkgs.writeText "backend.toml" (
              "include = ${builtins.toJSON (map (backend: "${backend}/backend.toml") backends)}\n"
            );
          in
          actualPkgs.writeShellScriptBin "artifacts" ''
            export NIXOS_ARTIFACTS_BACKEND_CONFIG=''${NIXOS_ARTIFACTS_BACKEND_CONFIG:-${config}}
            exec ${lib.getExe (packageFor actualPkgs)} "$@"
          '';
      };

      # What only a machine with nixpkgs can verify: the modules evaluated in a
      # real NixOS, and a VM booting with a dummy artifact installed by
      # artifacts-<name>.service, with exact owner and mode.
      checks = forAllSystems (pkgs: {
        artifacts-dummy = pkgs.testers.runNixOSTest {
          name = "artifacts-dummy";
          nodes.machine = {
            imports = [ self.nixosModules.default ];
            users.users.app = {
              isSystemUser = true;
              group = "app";
            };
            users.groups.app = { };
            artifacts.default.backend = "dummy";
            artifacts.store.api-token = {
              generator = pkgs.writeShellScript "api-token" ''
                head -c 32 /dev/urandom | ${pkgs.coreutils}/bin/base64 > "$out/token"
              '';
              files.token = {
                owner = "app";
                group = "app";
                mode = "0440";
              };
            };
          };
          testScript = ''
            machine.wait_for_unit("artifacts-api-token.target")
            machine.succeed("test \"$(stat -c '%U %G %a' /run/artifacts/api-token/token)\" = 'app app 440'")
            machine.succeed("test -s /run/artifacts/api-token/token")
          '';
        };
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ (packageFor pkgs) ];
          packages = [
            pkgs.bubblewrap
            pkgs.age
            pkgs.sops
            pkgs.jsonnet
            pkgs.openssl
            pkgs.cargo-nextest
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt-rfc-style);
    };
}
