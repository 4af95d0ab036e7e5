# Home Manager declarations written the way upstream nixos-artifacts'
# examples/hm/*.nix are, evaluated against our modules by tests/e2e/nixos.rs.
{
  imports = [
    ./identity.nix
    ./prompted.nix
  ];
}
