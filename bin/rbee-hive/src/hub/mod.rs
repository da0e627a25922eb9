//! The HuggingFace Hub as this hive speaks it: the names in its request paths, its error
//! replies, and the hive's own upstream. The mirror's routes answer with them; the daemon's
//! state holds the upstream.

pub(crate) mod names;
pub(crate) mod reply;
pub(crate) mod upstream;

pub use upstream::HubUpstream;
