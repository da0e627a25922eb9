//! Integration tests of the HuggingFace vendor: protocol cases against wiremock, whole flows
//! against the project's fake hub. Everything talks to loopback and writes to temp dirs.

mod common;
mod conformance;
mod fake_hub;
mod hf_python;
mod mirrors;
mod protocol;
mod xet;
mod xet_hub;
