//! Integration tests of the `ollama:` vendor (one binary).

mod name;
mod protocol;
