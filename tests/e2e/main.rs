//! End-to-end tests: the real `artifacts` binary, real bubblewrap, real scripts.
//! Each test gets `<target tmp>/e2e/<test name>/` (see [`util::Project`]).

mod activate;
mod check_all;
mod cli;
mod cmp;
mod consumers;
mod failures;
mod flake;
mod generate;
mod hardening;
mod host_keys;
mod identities;
mod json;
mod lifecycle;
mod manual;
mod migrate_gc;
mod nested;
mod nix;
mod nixos;
mod openbao;
mod openbao_stamp;
mod parallel;
mod parity;
mod plugins;
mod project;
mod rekey;
mod safety;
mod shell;
mod shipped;
mod sops_transit;
mod stores;
mod switch;
mod tanka_tools;
mod terminal;
mod tools;
mod util;
