//! Property tests (bounded, run by `cargo test`): `metadata.json` decoding never panics, gives
//! clear errors, and keeps its invariants.

mod record;
