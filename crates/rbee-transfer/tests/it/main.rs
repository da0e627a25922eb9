//! Integration tests of the transfer engine against loopback servers.

mod common;
mod faults;
mod hedge;
mod hostile;
mod many;
mod pieces;
mod protocol;
mod resume;
