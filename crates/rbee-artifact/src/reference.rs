//! Artifact references: what a user names, parsed once at the edge.
//!
//! A reference is `SCHEME:REST` (`hf:ORG/REPO`, `gh:OWNER/REPO@TAG/ASSET`, `file:PATH`,
//! `https://HOST/PATH`, `ollama:NAME:TAG`) or a spelling a vendor claims without its scheme
//! (`ORG/REPO`, `hf.co/…`, `NAME:TAG`). The core only splits the prefix and asks the registered
//! vendors (see [`grammar`](crate::VendorReference) for the order); each vendor crate owns its
//! grammar, its typed reference and its catalog key. `docs/references.md` lists every form.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::grammar::{self, Claim, DynReference, RefError, RefErrorKind, Scheme, VendorReference};

/// A parsed reference to an artifact at some vendor: the vendor's typed reference behind one
/// object-safe face.
///
/// Parse with [`str::parse`] (the vendors must be registered, see
/// [`register_reference`](crate::register_reference)); [`Display`](fmt::Display) writes the
/// canonical form, which parses back to an equal value — except that credentials a vendor
/// keeps out of sight (a pre-signed URL's signature) are written as `REDACTED`, and the
/// redacted and the full form have the same catalog key. The vendor gets its own type back with
/// [`get`](Self::get).
#[derive(Clone)]
pub struct ArtifactRef(Arc<dyn DynReference>);

impl FromStr for ArtifactRef {
    type Err = RefError;

    fn from_str(input: &str) -> Result<Self, RefError> {
        parse(input)
    }
}

impl ArtifactRef {
    /// Wraps a vendor's typed reference.
    pub fn new<R: VendorReference>(reference: R) -> Self {
        Self(Arc::new(reference))
    }

    /// The vendor's typed reference, when this is one of `R`'s.
    ///
    /// This is the one place a reference is downcast: a vendor asks for its own type and
    /// answers [`Unsupported`](crate::Error::Unsupported) for anything else.
    pub fn get<R: VendorReference>(&self) -> Option<&R> {
        self.0.as_any().downcast_ref()
    }

    /// The vendor scheme of this reference.
    pub fn scheme(&self) -> Scheme {
        self.0.scheme()
    }

    /// Whether the reference always names the same bytes (a commit sha, a digest-pinned URL).
    /// Moving references (branches, "latest") are worth re-resolving when asked again.
    pub fn is_pinned(&self) -> bool {
        self.0.is_pinned()
    }

    /// The reference with any credential in a URL's query string left in: what another process
    /// (a daemon) needs to fetch it. Only for handing the request on — never show or record it;
    /// [`Display`](fmt::Display) is the safe form.
    pub fn to_request_string(&self) -> String {
        self.0.to_request_string()
    }

    /// Makes a relative `file:` path absolute against the current directory (no file-system
    /// access); other references are returned unchanged. Binaries call this at the edge so the
    /// same file always has the same catalog entry.
    pub fn absolutize(self) -> std::io::Result<Self> {
        Ok(Self(self.0.absolutize()?))
    }

    /// The catalog folder names below the scheme's folder.
    pub(crate) fn catalog_segments(&self) -> Vec<String> {
        self.0.catalog_segments()
    }
}

impl PartialEq for ArtifactRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_dyn(&*other.0)
    }
}

impl Eq for ArtifactRef {}

impl Hash for ArtifactRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_dyn(state);
    }
}

impl fmt::Debug for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for ArtifactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Serialize for ArtifactRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ArtifactRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

fn parse(raw: &str) -> Result<ArtifactRef, RefError> {
    let input = raw.trim();
    grammar::with_grammars(|grammars| {
        // Errors that no vendor owns show the first registered vendor's example.
        let default_example = grammars
            .first()
            .map_or("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M", |g| {
                g.example()
            });
        let fail = |kind: RefErrorKind, example: &'static str| RefError {
            input: input.escape_debug().to_string(),
            kind,
            example,
        };
        if input.is_empty() {
            return Err(fail(RefErrorKind::Empty, default_example));
        }
        if let Some((position, _)) = input.char_indices().find(|(_, c)| c.is_control()) {
            return Err(fail(
                RefErrorKind::ControlCharacter { position },
                default_example,
            ));
        }
        let claimed = |level: Claim| -> Option<Result<ArtifactRef, RefError>> {
            let mut claimants = grammars.iter().filter(|g| g.claim(input) == Some(level));
            let first = claimants.next()?;
            if let Some(second) = claimants.next() {
                return Some(Err(fail(
                    RefErrorKind::Ambiguous {
                        first: first.scheme(),
                        second: second.scheme(),
                    },
                    default_example,
                )));
            }
            Some(
                first
                    .parse_claimed(input)
                    .map(ArtifactRef)
                    .map_err(|k| fail(k, first.example())),
            )
        };
        if let Some(result) = claimed(Claim::Host) {
            return result;
        }
        let prefix = grammar::split_scheme(input);
        if let Some((scheme, body)) = prefix {
            let scheme = scheme.to_ascii_lowercase();
            if let Some(g) = grammars
                .iter()
                .find(|g| g.prefixes().contains(&scheme.as_str()))
            {
                return g
                    .parse(input, body)
                    .map(ArtifactRef)
                    .map_err(|k| fail(k, g.example()));
            }
        }
        if let Some(result) = claimed(Claim::Bare) {
            return result;
        }
        Err(match prefix {
            Some((scheme, _)) => fail(
                RefErrorKind::UnknownScheme {
                    scheme: scheme.to_string(),
                },
                default_example,
            ),
            None => fail(
                RefErrorKind::Missing {
                    part: "scheme (write SCHEME:…, e.g. hf:ORG/REPO or file:PATH)",
                },
                default_example,
            ),
        })
    })
}
