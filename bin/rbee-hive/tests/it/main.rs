//! rbee-hive integration tests: the router in-process, and the real binary end to end.

mod daemon;
mod router;
mod support;
