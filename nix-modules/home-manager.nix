# The Home Manager module of `artifacts`: the same option tree as NixOS
# (./options.nix, without owner, group and shared), one user systemd target
# per artifact, and the public files (`secret = false`) installed at their
# path with their mode by the activation step `artifactsPublic`. The user is
# known to the CLI and to the backends' modules by `artifacts.userName`
# (./home-backend-options.nix, default `home.username`). Secret files reach
# the user through backends/agenix/home-manager.nix or
# backends/sops-nix/home-manager.nix.
{ config, lib, ... }:
let
  cfg = config.artifacts;
  publicFiles = import ./lib/public.nix {
    inherit (cfg) store projectRoot;
    name = cfg.userName;
    kind = "homemanager";
    defaultBackend = cfg.default.backend;
  };
  # `$XDG_RUNTIME_DIR` in a declared path is expanded at activation; the
  # rest of the path is quoted.
  shellPath =
    path:
    let
      prefix = "$XDG_RUNTIME_DIR";
      n = builtins.stringLength prefix;
    in
    if builtins.substring 0 n path == prefix then
      "\"\${XDG_RUNTIME_DIR:-/run/user/$(id -u)}\"" + lib.escapeShellArg (builtins.substring n (-1) path)
    else
      lib.escapeShellArg path;
  install =
    entry:
    let
      source = builtins.path {
        path = entry.source;
        name = "artifacts-public";
      };
      temporary = shellPath "${entry.path}.artifacts-new";
    in
    "run install -D -T -m ${entry.mode} ${source} ${temporary} && run mv -f -T ${temporary} ${shellPath entry.path}";
in
{
  imports = [ (import ./options.nix "homemanager") ];

  config = lib.mkIf (cfg.store != { }) {
    assertions = [
      {
        assertion = publicFiles == [ ] || cfg.projectRoot != null;
        message = "artifacts: set artifacts.projectRoot (e.g. `./.` in your flake) so the public files under `public/` can be installed";
      }
    ];
    home.activation.artifactsPublic = lib.mkIf (publicFiles != [ ] && cfg.projectRoot != null) (
      lib.hm.dag.entryAfter [ "writeBoundary" ] (lib.concatMapStringsSep "\n" install publicFiles + "\n")
    );
    systemd.user.targets = lib.mapAttrs (_: target: {
      Unit = {
        Description = target.description;
        After = target.after;
        Requires = target.requires;
        AssertPathExists = target.unitConfig.AssertPathExists;
      };
      Install.WantedBy = target.wantedBy;
    }) (import ./lib/targets.nix {
      inherit (cfg) store;
      kind = "homemanager";
      defaultBackend = cfg.default.backend;
    });
  };
}
