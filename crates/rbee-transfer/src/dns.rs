//! Name resolution for the engine's clients: the system resolver, with its failure typed so the
//! retry policy can tell a name that does not resolve (waiting will not fix it) from a dropped
//! connection.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A host name did not resolve to any address.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve the host name `{host}`")]
pub struct NameNotResolved {
    /// The name that was looked up.
    pub host: String,
    /// What the system resolver said.
    #[source]
    pub source: std::io::Error,
}

/// The system resolver (`getaddrinfo`, like reqwest's default), answering [`NameNotResolved`].
#[derive(Debug, Default)]
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let found = tokio::net::lookup_host((host.clone(), 0)).await;
            match found {
                Ok(addrs) => Ok(Box::new(addrs.collect::<Vec<_>>().into_iter()) as Addrs),
                Err(source) => Err(Box::new(NameNotResolved { host, source }) as _),
            }
        })
    }
}
