# NixOS declarations written the way upstream nixos-artifacts' examples/*.nix
# are (a generator with owner, group and path used by a service; a prompt; a
# shared artifact), evaluated against our modules by tests/e2e/nixos.rs.
{
  imports = [
    ./service-env.nix
    ./prompted.nix
    ./shared-token.nix
  ];
}
