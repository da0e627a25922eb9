//! Integration tests of the Xet format: known answers from xet-core and the real client,
//! round trips, and hostile bytes.

mod decode_fuzz;
mod known_answers;
