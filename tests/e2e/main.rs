//! End-to-end tests: the real `artifacts` binary, real bubblewrap, real scripts.
//! Each test gets `<target tmp>/e2e/<test name>/` (see [`util::Project`]).

mod activate;
mod cli;
mod failures;
mod flake;
mod generate;
mod safety;
mod terminal;
mod util;
