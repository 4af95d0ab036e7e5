# The option tree of `artifacts`, shared by the NixOS and Home Manager modules
# (upstream nixos-artifacts' names, so existing declarations keep working):
#   artifacts.default.backend
#   artifacts.store.<name>.{description, shared, backend, generator, prompts, files, dependencies, inputs}
#   artifacts.config.<backend>  (free-form, handed to backend scripts; a
#                               backend module may declare options under it)
# Called with `kind` = "nixos" or "homemanager"; Home Manager files have no
# owner or group, and shared artifacts are NixOS only. The target's name
# (`artifacts.machineName` / `artifacts.userName`) is declared by
# ./backend-options.nix / ./home-backend-options.nix.
kind:
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalExpression;
  cfg = config.artifacts;
  files = import ./lib/files.nix;
  nixos = kind == "nixos";
  target = if nixos then cfg.machineName else cfg.userName;

  # The attribute name of a prompt, file or artifact, readable in the config.
  nameOption =
    name: description:
    mkOption {
      type = types.str;
      default = name;
      readOnly = true;
      inherit description;
    };

  promptType = types.submodule (
    { name, ... }:
    {
      options = {
        name = nameOption name "The prompt's name: the file it is written to in `$prompts`.";
        description = mkOption {
          type = types.nullOr types.str;
          default = null;
          description = "What the person is asked.";
        };
        type = mkOption {
          type = types.enum [ "line" "hidden" "multiline" "multiline-hidden" ];
          default = "hidden";
          description = "How the answer is typed: one line or several, shown or hidden.";
        };
        # Keep these two in sync with `Prompt` in crates/artifacts-model/src/model.rs.
        allowEmpty = mkOption {
          type = types.bool;
          default = false;
          description = "Accept an empty answer; otherwise it is refused (asked again in a terminal).";
        };
        confirm = mkOption {
          type = types.bool;
          default = true;
          description = "Ask a hidden answer twice and require both to match; set false for long pasted values.";
        };
      };
    }
  );

  fileType =
    artifactName: artifact:
    types.submodule (
      { name, config, ... }:
      {
        options =
          {
            name = nameOption name "The file's name: what the generator writes to `$out/<name>`.";
            path = mkOption {
              type = types.str;
              default = files.defaultPath kind artifactName name;
              defaultText = literalExpression (
                if nixos then ''"/run/artifacts/<artifact>/<file>"'' else ''"$XDG_RUNTIME_DIR/artifacts/<artifact>/<file>"''
              );
              description =
                "Where the file is placed on the ${if nixos then "machine" else "user's session"}. Never under /nix/store (world-readable)."
                + lib.optionalString (!nixos) " `$XDG_RUNTIME_DIR` is kept literally and expanded at activation.";
            };
            mode = mkOption {
              type = types.strMatching "0?[0-7]{3}";
              default = "0400";
              description = "Permission bits, as an octal string.";
            };
            secret = mkOption {
              type = types.bool;
              default = true;
              description = "Whether the content is secret (encrypted by the backend) or public (kept in plaintext under `public/` in the repository, readable as `value`).";
            };
            value = mkOption {
              type = types.nullOr types.str;
              readOnly = true;
              # Nothing of a dummy artifact is in the project: it is made on the machine.
              default = if (import ./lib/common.nix).backendOf null artifact == "dummy" then null else files.publicValue {
                inherit (cfg) projectRoot;
                inherit kind target;
                artifact = artifactName;
                file = name;
                shared = artifact.shared or false;
                inherit (config) secret;
              };
              defaultText = literalExpression ''<content of public/…/<artifact>/<file>, or null>'';
              description = ''
                The content of a public file (`secret = false`), read from the
                project's public store at evaluation time, for example a public
                key another machine's configuration uses. `null` for a secret
                file and for a dummy artifact's files, which exist only on the
                machine (so that `nix eval --json` of the whole tree works).
                Reading it before `artifacts generate` wrote the file is an
                evaluation error that says what to do.
              '';
            };
          }
          // lib.optionalAttrs nixos {
            owner = mkOption {
              type = types.str;
              default = "root";
              description = "Owner of the file on the machine.";
            };
            group = mkOption {
              type = types.str;
              default = "root";
              description = "Group of the file on the machine.";
            };
          };
      }
    );

  artifactType = types.submodule (
    { name, config, ... }:
    {
      options =
        {
          name = nameOption name "The artifact's name (its attribute name).";
          description = mkOption {
            type = types.nullOr types.str;
            default = null;
            description = "What the artifact is, for people.";
          };
          backend = mkOption {
            type = types.nullOr types.str;
            default = cfg.default.backend;
            defaultText = literalExpression "config.artifacts.default.backend";
            description = "The backend storing this artifact (`agenix`, `sops-nix`, `dummy`, or one from backend.toml).";
          };
          serialization = mkOption {
            type = types.nullOr types.str;
            default = null;
            visible = false;
            description = "Deprecated name of `backend`.";
          };
          generator = mkOption {
            type = types.nullOr (types.either types.package types.path);
            default = null;
            example = literalExpression ''pkgs.writeShellScript "gen" "ssh-keygen -q -t ed25519 -N \"\" -f $out/key"'';
            description = ''
              The script that makes the files: it writes each declared file to
              `$out/<file>`, reads prompt answers from `$prompts/<prompt>` and
              dependencies from `$in/<artifact>/<file>`. It runs in a sandbox
              without network.
            '';
          };
          prompts = mkOption {
            type = types.attrsOf promptType;
            default = { };
            description = "Values asked from a person (or from ARTIFACTS_PROMPT_* in CI) before the generator runs.";
          };
          files = mkOption {
            type = types.attrsOf (fileType name config);
            default = { };
            description = "The files the artifact consists of.";
          };
          dependencies = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = "Artifacts whose files this generator reads from `$in`; regenerating one regenerates this one.";
          };
          # Keep in sync with `inputs` in crates/artifacts-model (load.rs,
          # validate.rs) and the flake loader (crates/artifacts-engine/src/flake.rs).
          inputs = mkOption {
            type = types.listOf types.str;
            default = [ ];
            example = [ "generators/lib.sh" ];
            description = ''
              Files and directories of the project (relative to its root, no
              `..`, no symbolic links) the generator reads, such as shell code
              shared between generators. The generator runs in the project
              root, where it sees them read-only at the same place
              (`. ./generators/lib.sh`); changing one makes this artifact
              stale.
            '';
          };
        }
        // lib.optionalAttrs nixos {
          shared = mkOption {
            type = types.bool;
            default = false;
            description = "Generate once and use the same files on every machine declaring it (declared identically everywhere).";
          };
        };
    }
  );
in
{
  imports = [ (if nixos then ./backend-options.nix else ./home-backend-options.nix) ];

  options.artifacts =
    {
      default.backend = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "The backend of artifacts that name none.";
      };
      store = mkOption {
        type = types.attrsOf artifactType;
        default = { };
        description = "The artifacts of this ${if nixos then "machine" else "user"}.";
      };
      config = mkOption {
        # A free-form submodule: settings nobody declared are accepted as
        # they are, and a backend module may declare typed options under
        # `artifacts.config.<backend>` (as upstream's agenix backend does).
        type = types.submodule {
          freeformType = types.attrsOf (types.attrsOf types.anything);
        };
        default = { };
        example = literalExpression ''{ agenix.publicHostKey = "ssh-ed25519 AAAA…"; }'';
        description = "Per-backend settings (`artifacts.config.<backend>`), handed to the backend's scripts in `$targets`.";
      };
    };

  config = lib.mkIf (cfg.store != { }) {
    assertions =
      [
        {
          assertion = target != "";
          message =
            if nixos then
              "artifacts: this machine has no name (`networking.hostName` is empty); set `artifacts.machineName`"
            else
              "artifacts: this user has no name (`home.username` is empty); set `artifacts.userName`";
        }
      ]
      ++ map (where: {
        assertion = false;
        message = "artifacts: ${where} is in /nix/store, which every user can read; use a path such as /run/artifacts/…";
      }) (files.pathsInStore cfg.store)
      ++ lib.mapAttrsToList (name: artifact: {
        assertion = artifact.backend != null || artifact.serialization != null;
        message = "artifacts: artifact `${name}` has no backend: set `artifacts.store.${name}.backend` or `artifacts.default.backend`";
      }) cfg.store;
  };
}
