//! Integration tests of rbee-gguf: one binary.

mod estimate;
mod fuzz;
mod reader;
mod remote;
