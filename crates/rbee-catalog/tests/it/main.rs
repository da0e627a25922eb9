//! The on-disk format: records decode without panics, with clear errors and their invariants
//! kept (bounded property tests), and catalogs written by the current layout are still found.

mod layout;
mod record;
