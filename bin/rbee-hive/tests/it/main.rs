//! rbee-hive integration tests: the router in-process, and the real binary end to end.

mod connections;
mod daemon;
mod fuzz;
mod local_files;
mod router;
mod support;
