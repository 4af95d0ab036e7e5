{
  # A fleet of two NixOS machines joined by WireGuard: each machine's keypair is
  # an artifact (private key secret, with agenix; public key public, in the
  # repository), and each machine's configuration reads the *other* machine's
  # public key as `files.public.value`. Run `artifacts` in this directory:
  # it evaluates nixosConfigurations and generates what is missing.
  #
  # The inputs are ordinary flake references, so the directory can be copied
  # anywhere; to use this checkout of artifacts instead of the published one,
  # lock it once: `nix flake lock --override-input artifacts path:$(realpath ../..)`.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # Keep in sync with `repository` in the workspace Cargo.toml.
    artifacts.url = "git+https://example.invalid/artifacts";
    artifacts.inputs.nixpkgs.follows = "nixpkgs";
    agenix.url = "github:ryantm/agenix";
    agenix.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    { self, nixpkgs, artifacts, agenix }:
    let
      # Replace with your own keys: the admins' age keys (`artifacts age keygen
      # -o admin.key` prints one) and each host's `/etc/ssh/ssh_host_ed25519_key.pub`.
      admins = [ "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p" ];
      peers = {
        peer1 = { address = "10.100.0.1"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPeer1HostKeyExampleOnlyReplaceMe000000000"; };
        peer2 = { address = "10.100.0.2"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPeer2HostKeyExampleOnlyReplaceMe000000000"; };
      };
      machine =
        name: peer:
        nixpkgs.lib.nixosSystem {
          system = "x86_64-linux";
          modules = [
            agenix.nixosModules.default
            artifacts.nixosModules.default
            artifacts.nixosModules.agenix
            (
              { config, pkgs, ... }:
              let
                other = if name == "peer1" then "peer2" else "peer1";
              in
              {
                # Also `artifacts.machineName` (the name `artifacts` knows
                # the machine by, `per-machine/<name>/`).
                networking.hostName = name;
                artifacts.projectRoot = ./.;
                artifacts.default.backend = "agenix";
                artifacts.config.agenix = {
                  publicHostKey = peer.hostKey;
                  publicUserKeys = admins;
                };
                # agenix decrypts with the host key the files are encrypted to.
                services.openssh.enable = true;
                age.identityPaths = [ "/etc/ssh/ssh_host_ed25519_key" ];
                artifacts.store.wireguard = {
                  description = "WireGuard keypair of ${name}";
                  generator = pkgs.writeShellScript "wireguard-keypair" ''
                    ${pkgs.wireguard-tools}/bin/wg genkey > "$out/private"
                    ${pkgs.wireguard-tools}/bin/wg pubkey < "$out/private" > "$out/public"
                  '';
                  files.private = { owner = "systemd-network"; mode = "0400"; };
                  # Installed from public/ at activation, like the secret one.
                  files.public = { secret = false; mode = "0444"; };
                };
                networking.wireguard.interfaces.wg0 = {
                  ips = [ "${peer.address}/24" ];
                  listenPort = 51820;
                  privateKeyFile = config.artifacts.store.wireguard.files.private.path;
                  peers = [
                    {
                      # The other machine's public key, read from public/ at evaluation.
                      publicKey = nixpkgs.lib.removeSuffix "\n"
                        self.nixosConfigurations.${other}.config.artifacts.store.wireguard.files.public.value;
                      allowedIPs = [ "${peers.${other}.address}/32" ];
                    }
                  ];
                };
                # Services that need the key wait for it.
                systemd.services.wireguard-wg0 = {
                  bindsTo = [ "artifacts-wireguard.target" ];
                  after = [ "artifacts-wireguard.target" ];
                };
                system.stateVersion = "25.05";
                boot.loader.grub.device = "nodev";
                fileSystems."/" = { device = "/dev/vda"; fsType = "ext4"; };
              }
            )
          ];
        };
    in
    {
      nixosConfigurations = nixpkgs.lib.mapAttrs machine peers;
    };
}
