//! rbee-hive integration tests: the router in-process, and the real binary end to end.

mod daemon;
mod full_disk;
mod router;
mod support;
