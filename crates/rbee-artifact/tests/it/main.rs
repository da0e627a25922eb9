//! Property tests (bounded, run by `cargo test`): the reference grammar and URL redaction never
//! panic, give clear errors, and keep their invariants.

mod reference;
