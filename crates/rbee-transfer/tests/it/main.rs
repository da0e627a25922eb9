//! Integration tests of the transfer engine against loopback servers.

mod common;
mod protocol;
mod resume;
