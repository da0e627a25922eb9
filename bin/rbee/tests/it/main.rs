//! End-to-end tests of the real `rbee` binary: one integration-test binary, a module per area.

mod cli;
mod full_disk;
mod github;
mod hf;
mod hive;
mod inspect;
mod integrity;
mod local_state;
mod ollama;
mod rack;
mod shared_store;
mod soak;
mod support;
mod transfer;
mod xet;
