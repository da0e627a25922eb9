//! Integration tests of the `ollama:` vendor (one binary).

mod fake_hub;
mod name;
mod protocol;
mod share;
