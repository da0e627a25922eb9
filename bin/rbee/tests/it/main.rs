//! End-to-end tests of the real `rbee` binary: one integration-test binary, a module per area.

mod cli;
mod github;
mod hf;
mod hive;
mod inspect;
mod support;
mod transfer;
