//! End-to-end tests: the real `artifacts` binary, real bubblewrap, real scripts.
//! Each test gets `<target tmp>/e2e/<test name>/` (see [`util::Project`]).

mod activate;
mod cli;
mod cmp;
mod consumers;
mod failures;
mod flake;
mod generate;
mod hardening;
mod host_keys;
mod identities;
mod lifecycle;
mod migrate_gc;
mod nix;
mod nixos;
mod openbao;
mod safety;
mod shipped;
mod sops_transit;
mod stores;
mod switch;
mod terminal;
mod tools;
mod util;
