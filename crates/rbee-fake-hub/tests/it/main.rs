//! Integration tests: every feature through real HTTP on loopback.

mod admin;
mod binary;
mod common;
mod faults;
mod files;
mod gh;
mod hf;
mod hf_python;
mod xet;
