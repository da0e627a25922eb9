//! The Hub's Xet store, read natively: which files it holds and where to ask for them
//! ([`XetFile`], from the resolve `HEAD`), and the CAS read tokens ([`XetTokens`]).
//!
//! ```text
//! HEAD {endpoint}/{repo}/resolve/{rev}/{path}   (not followed)
//!   → X-Xet-Hash, Link rel="xet-auth" / rel="xet-reconstruction-info" (older:
//!     X-Xet-Refresh-Route), X-Linked-Etag = the sha256 checked at the end
//! GET {endpoint}/api/models/{repo}/xet-read-token/{rev}   (Hub token)
//!   → {accessToken, exp, casUrl}: sent only to casUrl's origin, refreshed before exp
//! ```

mod attach;
mod cache;
mod decode;
mod discovery;
mod plan;
mod source;
mod token;

pub(crate) use attach::attach;
pub use cache::{ChunkCache, HeldFile, LinkedChunk};
pub use discovery::XetFile;
pub use rbee_xet::is_xet_hash;
pub use source::XetSource;
pub use token::{XetToken, XetTokens};
