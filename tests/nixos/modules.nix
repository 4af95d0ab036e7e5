# Real NixOS and Home Manager evaluations of the artifacts modules (the kit's
# nixpkgs lib/ + nixos/, the real agenix, sops-nix and home-manager modules),
# batched into one `nix-instantiate --eval --strict --json` by
# tests/e2e/nixos.rs, which writes the project files and checks the result.
{ kit, repo, project }:
let
  root = /. + project;
  nixos =
    modules:
    (import (kit + "/nixpkgs/nixos/lib/eval-config.nix") {
      system = "x86_64-linux";
      modules = [
        (kit + "/agenix/modules/age.nix")
        (kit + "/sops-nix/modules/sops")
        (repo + "/nix-modules/nixos.nix")
        (repo + "/backends/agenix/module.nix")
        (repo + "/backends/sops-nix/module.nix")
        (repo + "/backends/dummy/module.nix")
        (repo + "/backends/openbao/module.nix")
        (
          { pkgs, ... }:
          {
            boot.loader.grub.enable = false;
            fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
            system.stateVersion = "24.05";
            services.openssh.enable = true;
            sops.age.sshKeyPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
            artifacts.dummy.package = pkgs.artifacts;
            artifacts.openbao.package = pkgs.artifacts;
          }
        )
      ] ++ modules;
    }).config;
  homePkgs = import (kit + "/nixpkgs") { system = "x86_64-linux"; };
  homeConfiguration = modules: {
    imports = [
      (kit + "/agenix/modules/age-home.nix")
      (kit + "/sops-nix/modules/home-manager/sops.nix")
      (repo + "/nix-modules/home-manager.nix")
      (repo + "/backends/agenix/home-manager.nix")
      (repo + "/backends/sops-nix/home-manager.nix")
      (repo + "/backends/openbao/home-manager.nix")
      ({ pkgs, ... }: { artifacts.openbao.package = pkgs.artifacts; })
    ] ++ modules;
    home.username = "alice";
    home.homeDirectory = "/home/alice";
    home.stateVersion = "24.05";
  };
  home =
    modules:
    (import (kit + "/home-manager/modules") {
      pkgs = homePkgs;
      configuration = homeConfiguration modules;
    }).config;
  # The same evaluation without Home Manager's entry point, which throws on
  # a failed assertion: the modules as home-manager/modules/default.nix
  # assembles them, so one batch can read the assertions' messages.
  homeUnchecked =
    modules:
    let
      lib = import (kit + "/home-manager/modules/lib/stdlib-extended.nix") homePkgs.lib;
    in
    (lib.evalModules {
      modules = [ (homeConfiguration modules) ] ++ import (kit + "/home-manager/modules/modules.nix") {
        inherit lib;
        pkgs = homePkgs;
        check = true;
      };
      class = "homeManager";
      specialArgs.modulesPath = builtins.toString (kit + "/home-manager/modules");
    }).config;

  generator = pkgs: name: pkgs.writeShellScript name "echo generated > \"$out/x\"";
  ours =
    config: units: view:
    builtins.listToAttrs (
      builtins.concatMap (
        name:
        let
          unit = "artifacts-${name}";
        in
        if units ? ${unit} then [ { name = unit; value = view units.${unit}; } ] else [ ]
      ) (builtins.attrNames config.artifacts.store)
    );
  failed = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
  # What a test compares: the backends' entries with the files they read, the
  # artifacts' units, the public-file installation, the failed assertions,
  # and the whole option tree as JSON (it must not throw).
  nixosView = config: {
    age = builtins.mapAttrs (_: s: {
      inherit (s) path owner group mode;
      content = builtins.readFile s.file;
    }) config.age.secrets;
    sops = builtins.mapAttrs (_: s: {
      inherit (s) path owner group mode key format;
      content = builtins.readFile s.sopsFile;
    }) config.sops.secrets;
    # Only the artifacts' units: listing every unit would evaluate them all.
    targets = ours config config.systemd.targets (t: {
      inherit (t) wantedBy after requires;
      assertPathExists = t.unitConfig.AssertPathExists;
    });
    services = ours config config.systemd.services (s: {
      inherit (s) wantedBy before requires;
      execStart = s.serviceConfig.ExecStart;
    });
    public = config.system.activationScripts.artifacts-public or null;
    failed = failed config;
    store = builtins.toJSON config.artifacts;
  };
  homeView = config: {
    age = builtins.mapAttrs (_: s: {
      inherit (s) path mode;
      content = builtins.readFile s.file;
    }) config.age.secrets;
    identityPaths = config.age.identityPaths;
    sops = builtins.mapAttrs (_: s: {
      inherit (s) path mode key format;
      content = builtins.readFile s.sopsFile;
    }) config.sops.secrets;
    targets = ours config config.systemd.user.targets (t: { inherit (t) Unit Install; });
    public = config.home.activation.artifactsPublic.data or null;
    failed = failed config;
    store = builtins.toJSON config.artifacts;
  };
in
{
  # Everything that evaluates, in one process: `-A main`.
  main = {
  # agenix alone, with the machine name set in the one place that names it.
  agenix = nixosView (nixos [
    ({ pkgs, ... }: {
      networking.hostName = "ignored-host";
      artifacts.machineName = "agenix-box";
      artifacts.projectRoot = root;
      artifacts.default.backend = "agenix";
      artifacts.store.api = {
        generator = generator pkgs "api";
        inputs = [ "generators/lib.sh" ];
        prompts.password = { description = "API password"; type = "hidden"; };
        files.token = { owner = "nginx"; group = "nginx"; mode = "0440"; path = "/var/lib/api/token"; };
      };
    })
  ]);

  sops-nix = nixosView (nixos [
    ({ pkgs, ... }: {
      networking.hostName = "sops-box";
      artifacts.projectRoot = root;
      artifacts.store.db = {
        backend = "sops-nix";
        generator = generator pkgs "db";
        prompts.user = { type = "line"; };
        files.password = { owner = "postgres"; mode = "0400"; };
        files.ca = { secret = false; mode = "0444"; };
      };
    })
  ]);

  # openbao: one fetch service for the machine's openbao/vault artifacts,
  # the per-artifact targets after it, the refresh timer.
  openbao =
    let
      config = nixos [
        ({ pkgs, ... }: {
          networking.hostName = "bao-box";
          artifacts.projectRoot = root;
          artifacts.default.backend = "openbao";
          artifacts.config.openbao = { address = "https://bao.example:8200"; mount = "kv"; };
          artifacts.openbao.before = [ "nginx.service" ];
          artifacts.openbao.timer.enable = true;
          artifacts.store.tls = {
            generator = generator pkgs "tls";
            files.key = { owner = "nginx"; mode = "0400"; };
          };
          artifacts.store.db = {
            backend = "vault";
            generator = generator pkgs "db";
            files.password = { };
          };
          artifacts.store.local = {
            backend = "dummy";
            generator = generator pkgs "local";
            files.k = { };
          };
        })
      ];
      service = config.systemd.services.artifacts-openbao;
      refresh = config.systemd.services.artifacts-openbao-refresh;
    in
    nixosView config // {
      fetch = {
        inherit (service) wantedBy before after wants;
        execStart = service.serviceConfig.ExecStart;
        remain = service.serviceConfig.RemainAfterExit;
      };
      refresh = {
        execStart = refresh.serviceConfig.ExecStart;
        remain = refresh.serviceConfig.RemainAfterExit or false;
        timer = config.systemd.timers.artifacts-openbao-refresh.timerConfig.OnCalendar;
      };
      manifest = config.system.build.artifactsOpenbao.data;
    };

  dummy = nixosView (nixos [
    ({ pkgs, ... }: {
      networking.hostName = "dummy-box";
      artifacts.default.backend = "dummy";
      artifacts.store.vm-key = {
        generator = generator pkgs "vm-key";
        files.key = { mode = "0400"; };
        files.pub = { secret = false; mode = "0444"; };
      };
    })
  ]);

  # All three backends, a shared artifact, prompts, public files of two
  # backends, and one of them read by another option through `value`.
  mixed =
    let
      config = nixos [
    ({ config, pkgs, ... }: {
      networking.hostName = "web-alpha";
      artifacts.projectRoot = root;
      artifacts.default.backend = "agenix";
      artifacts.store.wg = {
        generator = generator pkgs "wg";
        files.private = { owner = "systemd-network"; group = "systemd-network"; };
        files.public = { secret = false; mode = "0444"; owner = "systemd-network"; };
      };
      artifacts.store.db = {
        backend = "sops-nix";
        generator = generator pkgs "db";
        prompts.password.description = "database password";
        files.password = { owner = "postgres"; group = "postgres"; mode = "0440"; };
      };
      artifacts.store.psk = {
        shared = true;
        backend = "sops-nix";
        generator = generator pkgs "psk";
        files.key = { mode = "0400"; path = "/etc/psk/key"; };
      };
      artifacts.store.ca = {
        shared = true;
        generator = generator pkgs "ca";
        files.cert = { secret = false; mode = "0444"; path = "/etc/ssl/artifacts-ca.pem"; };
      };
      artifacts.store.boot = {
        backend = "dummy";
        generator = generator pkgs "boot";
        files.k = { };
      };
      environment.etc."wg-public".text = config.artifacts.store.wg.files.public.value;
    })
  ];
    in
    nixosView config // { wgPublic = config.environment.etc."wg-public".text; };

  # Every mistake our assertions name, in one machine.
  negative = failed (nixos [
    {
      networking.hostName = "";
      artifacts.store.no-backend.files.f = { };
      artifacts.store.in-store = { backend = "dummy"; files.f.path = "/nix/store/leak"; };
      artifacts.store.age-no-root = { backend = "agenix"; files.f = { }; };
      artifacts.store.sops-no-root = { backend = "sops-nix"; files.f = { }; };
      artifacts.store.public-no-root = { backend = "vault"; files.p.secret = false; };
    }
  ]);

  home-agenix = homeView (home [
    ({ config, ... }: {
      artifacts.projectRoot = root;
      artifacts.default.backend = "agenix";
      age.identityPaths = [ "/home/alice/.ssh/id_ed25519" ];
      artifacts.store.backup = {
        files.key = { mode = "0400"; };
        files.pub = { secret = false; mode = "0444"; path = "${config.home.homeDirectory}/.backup.pub"; };
        prompts.passphrase = { type = "multiline-hidden"; };
      };
    })
  ]);

  home-sops = homeView (home [
    {
      artifacts.projectRoot = root;
      artifacts.userName = "alice-work";
      sops.age.keyFile = "/home/alice/.config/sops/age/keys.txt";
      artifacts.store.mail = {
        backend = "sops-nix";
        files.password = { mode = "0400"; };
        files.config = { mode = "0600"; path = "/home/alice/.mail/password"; };
        files.fingerprint = { secret = false; mode = "0440"; };
      };
    }
  ]);

  # openbao for a Home Manager user: one user fetch service for both names
  # of the backend, the artifacts' targets after it, the refresh timer.
  home-openbao =
    let
      config = home [
        ({ pkgs, ... }: {
          artifacts.default.backend = "openbao";
          artifacts.openbao.address = "https://bao.example:8200";
          artifacts.openbao.timer = { enable = true; onCalendar = "daily"; };
          artifacts.config.vault.mount = "kv";
          artifacts.store.ssh = {
            generator = generator pkgs "ssh";
            files.key = { mode = "0600"; path = "/home/alice/.ssh/id_artifacts"; };
          };
          artifacts.store.mail = {
            backend = "vault";
            generator = generator pkgs "mail";
            files.password = { };
          };
          artifacts.store.backup = {
            backend = "agenix";
            files.key = { };
          };
          artifacts.projectRoot = root;
          age.identityPaths = [ "/home/alice/.ssh/id_ed25519" ];
        })
      ];
      services = config.systemd.user.services;
    in
    homeView config // {
      fetch = services.artifacts-openbao;
      refresh = services.artifacts-openbao-refresh;
      timer = config.systemd.user.timers.artifacts-openbao-refresh;
      manifest = config.artifacts.openbao.manifest.data;
      otherServices = builtins.filter (name: builtins.substring 0 9 name == "artifacts") (builtins.attrNames services);
    };
  # Without an address, the assertion names the fix; no timer unless asked.
  home-openbao-no-address =
    let
      config = homeUnchecked [
        {
          artifacts.userName = "alice-work";
          artifacts.store.token = { backend = "openbao"; files.t = { }; };
        }
      ];
    in
    {
      failed = failed config;
      services = builtins.filter (name: builtins.substring 0 9 name == "artifacts") (builtins.attrNames config.systemd.user.services);
      timers = builtins.attrNames config.systemd.user.timers;
      manifest = config.artifacts.openbao.manifest.data;
    };

  # Upstream nixos-artifacts' style: its examples' shapes and a backend
  # module declaring options under `artifacts.config.agenix`, with our core
  # modules (not our agenix backend: the third-party one replaces it).
  upstream =
    let
      config =
        (import (kit + "/nixpkgs/nixos/lib/eval-config.nix") {
          system = "x86_64-linux";
          modules = [
            (kit + "/agenix/modules/age.nix")
            (repo + "/nix-modules/nixos.nix")
            ./upstream
            ./upstream/agenix-backend.nix
            {
              boot.loader.grub.enable = false;
              fileSystems."/" = { device = "/dev/sda1"; fsType = "ext4"; };
              system.stateVersion = "24.05";
              services.openssh.enable = true;
              networking.hostName = "upstream-box";
              artifacts.default.backend = "agenix";
              artifacts.config.agenix = {
                flakeStoreDir = root + "/secrets";
                publicHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnlyAnExampleKeyForTheUpstreamStyleTest";
              };
              artifacts.config.other.note = "free-form";
            }
          ];
        }).config;
    in
    {
      store = builtins.toJSON config.artifacts.store;
      config = config.artifacts.config;
      age = builtins.mapAttrs (_: s: { inherit (s) path owner group; }) config.age.secrets;
      environmentFile = config.services.vaultwarden.environmentFile;
      failed = failed config;
    };
  upstream-home =
    let
      config =
        (import (kit + "/home-manager/modules") {
          pkgs = import (kit + "/nixpkgs") { system = "x86_64-linux"; };
          configuration = {
            imports = [
              (kit + "/agenix/modules/age-home.nix")
              (repo + "/nix-modules/home-manager.nix")
              ./upstream/hm
              ./upstream/hm/agenix-backend.nix
            ];
            home.username = "some-user";
            home.homeDirectory = "/home/some-user";
            home.stateVersion = "24.05";
            artifacts.default.backend = "agenix";
            artifacts.config.agenix.identityPaths = [ "/home/some-user/.ssh/id_ed25519" ];
          };
        }).config;
    in
    {
      store = builtins.toJSON config.artifacts.store;
      config = config.artifacts.config;
      identityPaths = config.age.identityPaths;
      userName = config.artifacts.userName;
    };
  };

  # Evaluation errors, one process each (`-A <name>`): Home Manager throws on
  # a failed assertion; a missing store file throws when it is read.
  home-negative = (home [
    { artifacts.store.x = { backend = "sops-nix"; files.f = { }; }; sops.age.keyFile = "/k"; }
  ]).sops.secrets;
  missing-age = (nixos [
    {
      networking.hostName = "nowhere";
      artifacts.projectRoot = root;
      artifacts.store.wg = { backend = "agenix"; files.private = { }; };
    }
  ]).system.activationScripts.agenixInstall.text;
  missing-sops = (nixos [
    {
      networking.hostName = "nowhere";
      artifacts.projectRoot = root;
      artifacts.store.db = { backend = "sops-nix"; files.password = { }; };
    }
  ]).sops.secrets."db/password".sopsFile;
  missing-public = (nixos [
    {
      networking.hostName = "nowhere";
      artifacts.projectRoot = root;
      artifacts.store.ca = { backend = "agenix"; files.cert.secret = false; };
    }
  ]).system.activationScripts.artifacts-public.text;
}
