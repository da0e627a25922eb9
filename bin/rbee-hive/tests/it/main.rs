//! rbee-hive integration tests: the router in-process, and the real binary end to end.

mod budget;
mod connections;
mod daemon;
mod full_disk;
mod fuzz;
mod inspect;
mod local_files;
mod mirror;
mod mirror_python;
mod router;
mod support;
