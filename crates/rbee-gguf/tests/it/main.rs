//! Integration tests of rbee-gguf: one binary.

mod estimate;
mod fuzz;
mod python;
mod reader;
mod remote;
