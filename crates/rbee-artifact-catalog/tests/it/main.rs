//! Property tests (bounded, run by `cargo test`): the reference grammar, URL redaction and
//! `metadata.json` decoding never panic, give clear errors, and keep their invariants.

mod record;
mod reference;
