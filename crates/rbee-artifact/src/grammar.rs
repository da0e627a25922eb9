//! How a vendor plugs its references into the core: the typed [`VendorReference`] a vendor
//! crate implements, the one adapter that makes it object-safe, and the process-wide table of
//! registered grammars that [`ArtifactRef`](crate::ArtifactRef) parsing asks.
//!
//! # Who gets a reference
//!
//! The core never reads a vendor's grammar; it only splits `SCHEME:REST` and asks, in this
//! order:
//!
//! 1. every vendor that [claims](VendorReference::claim) the text with [`Claim::Host`] (a
//!    spelling of the vendor's own web host, such as `hf.co/…` or a `https://github.com/…`
//!    release URL), before any prefix is read;
//! 2. the vendor registered for the text's prefix (`hf:…`, `https://…`);
//! 3. when there is no prefix or it names no registered vendor, every vendor that claims the
//!    text with [`Claim::Bare`] (`ORG/REPO`, `NAME:TAG`);
//! 4. else the reference is refused (an unknown scheme, with a did-you-mean in the CLI).
//!
//! Two vendors claiming the same text at the same step is a refusal that names both, never a
//! silent pick: adding a vendor can make a spelling ambiguous, but never changes which vendor
//! an existing spelling goes to without saying so.

use std::any::Any;
use std::fmt::{self, Debug, Display};
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock};

use serde::{Deserialize, Serialize};

/// A vendor's typed reference, with the grammar that parses it and the rules that name it.
///
/// A vendor crate implements this for its reference type and registers it once with
/// [`register_reference`]; from then on `"scheme:…".parse::<ArtifactRef>()` yields it, and the
/// vendor gets it back with [`ArtifactRef::get`](crate::ArtifactRef::get).
///
/// [`Display`] writes the canonical spelling, which must parse back to an equal value.
pub trait VendorReference: Clone + Eq + Hash + Debug + Display + Send + Sync + 'static {
    /// The scheme: the vendor's name in catalog ids and folders (`hf`, `url`).
    const SCHEME: Scheme;
    /// The prefixes before `:` that name this vendor, lower case (`hf`, `huggingface`).
    const PREFIXES: &'static [&'static str];
    /// A valid reference, shown in error messages.
    const EXAMPLE: &'static str;
    /// How many folder levels the catalog key has below the scheme's folder; fixed per
    /// vendor, so an id maps back to one key.
    const KEY_DEPTH: usize;

    /// Parses a reference written with one of [`PREFIXES`](Self::PREFIXES): `input` is the
    /// whole (trimmed) text, `body` what follows the prefix's `:`.
    fn parse(input: &str, body: &str) -> Result<Self, RefErrorKind>;

    /// Whether this vendor takes `input` (trimmed, non-empty) although it is not written with
    /// one of its prefixes; see the [module docs](self) for the order of the steps.
    fn claim(input: &str) -> Option<Claim> {
        let _ = input;
        None
    }

    /// Parses a text this vendor [claimed](Self::claim).
    fn parse_claimed(input: &str) -> Result<Self, RefErrorKind> {
        Self::parse(input, input)
    }

    /// The catalog folder names below the scheme's folder, exactly
    /// [`KEY_DEPTH`](Self::KEY_DEPTH) of them, each made with
    /// [`key_segment`](crate::key_segment) or [`key_segment_body`](crate::key_segment_body).
    /// They are the artifact's identity on disk: never change them for an existing vendor.
    fn catalog_segments(&self) -> Vec<String>;

    /// Whether the reference always names the same bytes (a commit, a digest).
    fn is_pinned(&self) -> bool;

    /// The reference with any credential it carries left in, for handing the request to
    /// another process; [`Display`] is the form to show and record.
    fn to_request_string(&self) -> String {
        self.to_string()
    }

    /// The reference made independent of the current directory, for references that can be
    /// relative (a local path); others are returned as they are.
    fn absolutize(self) -> std::io::Result<Self> {
        Ok(self)
    }
}

/// How a vendor claims a reference written without its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// Taken before any prefix is read: a spelling of the vendor's own web host.
    Host,
    /// Taken only when the text has no prefix, or one that names no registered vendor.
    Bare,
}

/// The object-safe face of a [`VendorReference`], held inside an [`ArtifactRef`](crate::ArtifactRef). Implemented
/// once, for every `VendorReference`, so a reference is downcast in one place only
/// ([`ArtifactRef::get`](crate::ArtifactRef::get)).
pub(crate) trait DynReference: Send + Sync + Debug + Display {
    fn as_any(&self) -> &dyn Any;
    fn scheme(&self) -> Scheme;
    fn eq_dyn(&self, other: &dyn DynReference) -> bool;
    fn hash_dyn(&self, state: &mut dyn Hasher);
    fn catalog_segments(&self) -> Vec<String>;
    fn is_pinned(&self) -> bool;
    fn to_request_string(&self) -> String;
    fn absolutize(&self) -> std::io::Result<Arc<dyn DynReference>>;
}

impl<R: VendorReference> DynReference for R {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn scheme(&self) -> Scheme {
        R::SCHEME
    }

    fn eq_dyn(&self, other: &dyn DynReference) -> bool {
        other.as_any().downcast_ref::<R>() == Some(self)
    }

    fn hash_dyn(&self, mut state: &mut dyn Hasher) {
        R::SCHEME.hash(&mut state);
        self.hash(&mut state);
    }

    fn catalog_segments(&self) -> Vec<String> {
        VendorReference::catalog_segments(self)
    }

    fn is_pinned(&self) -> bool {
        VendorReference::is_pinned(self)
    }

    fn to_request_string(&self) -> String {
        VendorReference::to_request_string(self)
    }

    fn absolutize(&self) -> std::io::Result<Arc<dyn DynReference>> {
        let absolute: Arc<dyn DynReference> = Arc::new(VendorReference::absolutize(self.clone())?);
        Ok(absolute)
    }
}

/// A registered grammar, as the parser and the catalog ask it.
pub(crate) trait Grammar: Send + Sync {
    fn scheme(&self) -> Scheme;
    fn prefixes(&self) -> &'static [&'static str];
    fn example(&self) -> &'static str;
    fn key_depth(&self) -> usize;
    fn claim(&self, input: &str) -> Option<Claim>;
    fn parse(&self, input: &str, body: &str) -> Result<Arc<dyn DynReference>, RefErrorKind>;
    fn parse_claimed(&self, input: &str) -> Result<Arc<dyn DynReference>, RefErrorKind>;
}

struct GrammarOf<R>(PhantomData<fn() -> R>);

impl<R: VendorReference> Grammar for GrammarOf<R> {
    fn scheme(&self) -> Scheme {
        R::SCHEME
    }

    fn prefixes(&self) -> &'static [&'static str] {
        R::PREFIXES
    }

    fn example(&self) -> &'static str {
        R::EXAMPLE
    }

    fn key_depth(&self) -> usize {
        R::KEY_DEPTH
    }

    fn claim(&self, input: &str) -> Option<Claim> {
        R::claim(input)
    }

    fn parse(&self, input: &str, body: &str) -> Result<Arc<dyn DynReference>, RefErrorKind> {
        R::parse(input, body).map(|r| Arc::new(r) as Arc<dyn DynReference>)
    }

    fn parse_claimed(&self, input: &str) -> Result<Arc<dyn DynReference>, RefErrorKind> {
        R::parse_claimed(input).map(|r| Arc::new(r) as Arc<dyn DynReference>)
    }
}

/// The grammars of this process, in registration order.
static GRAMMARS: RwLock<Vec<&'static dyn Grammar>> = RwLock::new(Vec::new());

/// Makes references of `R`'s vendor parse everywhere in this process: `"scheme:…".parse()`,
/// catalog records, catalog ids. Registering the same vendor again does nothing. The binaries
/// and the provisioner register every vendor of the build at start
/// (`rbee_model_provisioner::register_references`).
///
/// # Panics
/// When another reference type already holds `R`'s scheme or one of its prefixes: two vendors
/// may not share a name, and that is a mistake in the build, not in any input.
pub fn register_reference<R: VendorReference>() {
    let mut grammars = GRAMMARS.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(existing) = grammars.iter().find(|g| g.scheme() == R::SCHEME) {
        assert!(
            existing.prefixes() == R::PREFIXES && existing.example() == R::EXAMPLE,
            "two reference types claim the scheme `{}`",
            R::SCHEME
        );
        return;
    }
    if let Some(clash) = grammars
        .iter()
        .find(|g| g.prefixes().iter().any(|p| R::PREFIXES.contains(p)))
    {
        panic!(
            "the vendors `{}` and `{}` share a prefix",
            clash.scheme(),
            R::SCHEME
        );
    }
    // A zero-sized value: leaking it allocates nothing.
    grammars.push(Box::leak(Box::new(GrammarOf::<R>(PhantomData))));
}

/// Runs `f` over the registered grammars.
pub(crate) fn with_grammars<T>(f: impl FnOnce(&[&'static dyn Grammar]) -> T) -> T {
    f(&GRAMMARS.read().unwrap_or_else(PoisonError::into_inner))
}

/// The schemes whose references parse in this process, in registration order.
pub fn registered_schemes() -> Vec<Scheme> {
    with_grammars(|g| g.iter().map(|g| g.scheme()).collect())
}

/// Every prefix that names a registered vendor, in registration order: what a did-you-mean
/// compares a mistyped prefix with.
pub fn registered_prefixes() -> Vec<&'static str> {
    with_grammars(|g| {
        g.iter()
            .flat_map(|g| g.prefixes().iter().copied())
            .collect()
    })
}

/// The scheme a prefix (the text before the first `:`) names, case-insensitively.
pub fn scheme_for_prefix(prefix: &str) -> Option<Scheme> {
    let prefix = prefix.to_ascii_lowercase();
    with_grammars(|g| {
        g.iter()
            .find(|g| g.prefixes().contains(&prefix.as_str()))
            .map(|g| g.scheme())
    })
}

/// Splits `SCHEME:REST` where the `:` comes before any `/` (so `ORG/REPO:Q4` has no prefix).
///
/// ```
/// use rbee_artifact::split_scheme;
/// assert_eq!(split_scheme("hf:o/r"), Some(("hf", "o/r")));
/// assert_eq!(split_scheme("https://e.com/m"), Some(("https", "//e.com/m")));
/// assert_eq!(split_scheme("o/r:Q4_K_M"), None);
/// assert_eq!(split_scheme("llama3.2"), None);
/// ```
pub fn split_scheme(input: &str) -> Option<(&str, &str)> {
    let colon = input.find(':')?;
    match input.find('/') {
        Some(slash) if slash < colon => None,
        _ => Some((&input[..colon], &input[colon + 1..])),
    }
}

/// Writes the registered prefixes as a user types them (`hf:, gh:, https://`).
pub(crate) struct KnownPrefixes;

impl Display for KnownPrefixes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Each vendor by its first prefix.
        let prefixes: Vec<&'static str> = with_grammars(|g| {
            g.iter()
                .filter_map(|g| g.prefixes().first().copied())
                .collect()
        });
        if prefixes.is_empty() {
            return f.write_str("none registered");
        }
        for (i, prefix) in prefixes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if prefix.starts_with("http") {
                write!(f, "{prefix}://")?;
            } else {
                write!(f, "{prefix}:")?;
            }
        }
        Ok(())
    }
}

/// The vendor a reference belongs to: its name in catalog ids and folders (`hf`, `gh`, `file`,
/// `url`, `ollama`), declared by the vendor crate as [`VendorReference::SCHEME`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scheme(&'static str);

impl Scheme {
    /// A scheme named `name`: lower-case letters and digits, as it appears in catalog ids.
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    /// The name (`"hf"`, `"gh"`, `"file"`, `"url"`, `"ollama"`).
    pub fn as_str(self) -> &'static str {
        self.0
    }

    /// The registered scheme with this name, if any.
    pub fn registered(name: &str) -> Option<Scheme> {
        with_grammars(|g| g.iter().map(|g| g.scheme()).find(|s| s.0 == name))
    }

    /// A valid reference of this scheme, shown in error messages; `None` when no vendor of
    /// this scheme is registered.
    pub fn example(self) -> Option<&'static str> {
        with_grammars(|g| g.iter().find(|g| g.scheme() == self).map(|g| g.example()))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for Scheme {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Scheme {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Scheme::registered(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "no vendor for the scheme `{name}` is part of this build"
            ))
        })
    }
}

/// Why a reference did not parse. Names the offending part and shows a valid example.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid reference `{input}`: {kind}\n  a valid example: {example}")]
pub struct RefError {
    /// What the user wrote (control characters escaped).
    pub input: String,
    /// What is wrong with it.
    pub kind: RefErrorKind,
    /// A valid reference of the scheme the user seemed to mean.
    pub example: &'static str,
}

/// The specific problem with a reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefErrorKind {
    /// Nothing was given.
    #[error("the reference is empty")]
    Empty,
    /// A control character (newline, tab, NUL…) appears.
    #[error("it contains a control character at byte {position}")]
    ControlCharacter {
        /// Byte offset in the input.
        position: usize,
    },
    /// A prefix that is not a known vendor.
    #[error("unknown scheme `{scheme}:` (known: {})", KnownPrefixes)]
    UnknownScheme {
        /// The prefix as written.
        scheme: String,
    },
    /// Two vendors claim the same spelling; a scheme prefix settles it.
    #[error("both the `{first}:` and the `{second}:` vendor read it; write it with a scheme")]
    Ambiguous {
        /// One vendor that claims it.
        first: Scheme,
        /// Another.
        second: Scheme,
    },
    /// A required part is absent.
    #[error("the {part} is missing")]
    Missing {
        /// Which part (e.g. "repository name").
        part: &'static str,
    },
    /// A part has characters or a shape its vendor does not allow.
    #[error("the {part} `{value}` is not valid: {reason}")]
    Invalid {
        /// Which part (e.g. "organisation", "path segment").
        part: &'static str,
        /// The offending text.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A well-formed reference to something this tool does not fetch.
    #[error("{0}")]
    Unsupported(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArtifactRef, key_segment};

    /// `NAME` vendors for the order of the steps: each takes `PREFIX:NAME`, and claims what
    /// its `claim` says.
    macro_rules! toy {
        ($ty:ident, $scheme:literal, $claim:expr) => {
            #[derive(Debug, Clone, PartialEq, Eq, Hash)]
            struct $ty(String);

            impl Display for $ty {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "{}:{}", $scheme, self.0)
                }
            }

            impl VendorReference for $ty {
                const SCHEME: Scheme = Scheme::new($scheme);
                const PREFIXES: &'static [&'static str] = &[$scheme];
                const EXAMPLE: &'static str = concat!($scheme, ":x");
                const KEY_DEPTH: usize = 1;

                fn parse(_input: &str, body: &str) -> Result<Self, RefErrorKind> {
                    Ok(Self(body.to_string()))
                }

                fn claim(input: &str) -> Option<Claim> {
                    let claim: fn(&str) -> Option<Claim> = $claim;
                    claim(input)
                }

                fn catalog_segments(&self) -> Vec<String> {
                    vec![key_segment(&self.0)]
                }

                fn is_pinned(&self) -> bool {
                    false
                }
            }
        };
    }

    toy!(HostToy, "hosttoy", |s| s
        .starts_with("toy.example/")
        .then_some(Claim::Host));
    toy!(BareToy, "baretoy", |s| s
        .ends_with("!bare")
        .then_some(Claim::Bare));
    toy!(OtherBareToy, "otherbaretoy", |s| s
        .ends_with("!both")
        .then_some(Claim::Bare));
    toy!(BothToy, "bothtoy", |s| s
        .ends_with("!both")
        .then_some(Claim::Bare));

    fn parse(s: &str) -> Result<ArtifactRef, crate::RefError> {
        register_reference::<HostToy>();
        register_reference::<BareToy>();
        register_reference::<OtherBareToy>();
        register_reference::<BothToy>();
        s.parse()
    }

    #[test]
    fn a_host_claim_comes_before_the_prefix_and_a_bare_claim_after_it() {
        let r = parse("toy.example/m").unwrap();
        assert_eq!(r.get::<HostToy>(), Some(&HostToy("toy.example/m".into())));
        // A registered prefix wins over a bare claim of the same text.
        let r = parse("hosttoy:m!bare").unwrap();
        assert_eq!(r.get::<HostToy>(), Some(&HostToy("m!bare".into())));
        // An unknown prefix, or none, leaves the text to the bare claims.
        let r = parse("nosuch:m!bare").unwrap();
        assert_eq!(r.get::<BareToy>(), Some(&BareToy("nosuch:m!bare".into())));
        assert_eq!(r.to_string(), "baretoy:nosuch:m!bare");
        let e = parse("nosuch:m").unwrap_err();
        assert!(matches!(e.kind, RefErrorKind::UnknownScheme { ref scheme } if scheme == "nosuch"));
        assert!(e.to_string().contains("hosttoy:"), "{e}");
    }

    #[test]
    fn two_vendors_claiming_one_spelling_is_an_error_naming_both() {
        let e = parse("m!both").unwrap_err();
        let RefErrorKind::Ambiguous { first, second } = e.kind else {
            panic!("{e}");
        };
        let mut both = [first.as_str(), second.as_str()];
        both.sort_unstable();
        assert_eq!(both, ["bothtoy", "otherbaretoy"]);
        // A prefix settles it.
        assert!(parse("bothtoy:m!both").unwrap().get::<BothToy>().is_some());
    }

    #[test]
    #[should_panic(expected = "share a prefix")]
    fn two_vendors_may_not_share_a_prefix() {
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        struct Clash;
        impl Display for Clash {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("clash:")
            }
        }
        impl VendorReference for Clash {
            const SCHEME: Scheme = Scheme::new("clash");
            const PREFIXES: &'static [&'static str] = &["clash", "sharedprefix"];
            const EXAMPLE: &'static str = "clash:";
            const KEY_DEPTH: usize = 1;
            fn parse(_: &str, _: &str) -> Result<Self, RefErrorKind> {
                Ok(Clash)
            }
            fn catalog_segments(&self) -> Vec<String> {
                vec!["clash".into()]
            }
            fn is_pinned(&self) -> bool {
                false
            }
        }
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        struct Clash2;
        impl Display for Clash2 {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("clash2:")
            }
        }
        impl VendorReference for Clash2 {
            const SCHEME: Scheme = Scheme::new("clash2");
            const PREFIXES: &'static [&'static str] = &["sharedprefix"];
            const EXAMPLE: &'static str = "clash2:";
            const KEY_DEPTH: usize = 1;
            fn parse(_: &str, _: &str) -> Result<Self, RefErrorKind> {
                Ok(Clash2)
            }
            fn catalog_segments(&self) -> Vec<String> {
                vec!["clash2".into()]
            }
            fn is_pinned(&self) -> bool {
                false
            }
        }
        register_reference::<Clash>();
        register_reference::<Clash2>();
    }
}
