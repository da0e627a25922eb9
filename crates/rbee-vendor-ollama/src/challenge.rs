//! The registry's `401` answer: `WWW-Authenticate: Bearer realm="…",service="…",scope="…"`,
//! and the token URL it leads to (the Docker registry token protocol, as Ollama speaks it).

use url::Url;

/// A parsed `Bearer` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) realm: Url,
    pub(crate) service: Option<String>,
    pub(crate) scope: Option<String>,
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value; `None` unless it is a `Bearer` challenge with an
    /// http(s) `realm`.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let (mut realm, mut service, mut scope) = (None, None, None);
        for (key, value) in params_of(params) {
            match key.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value),
                "service" => service = Some(value),
                "scope" => scope = Some(value),
                _ => {}
            }
        }
        let realm = Url::parse(&realm?)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())?;
        Some(Challenge {
            realm,
            service,
            scope,
        })
    }

    /// Where to ask for an anonymous token for the registry at `registry`: the realm with
    /// `service` and `scope`. `None` when the registry is `https` and the realm is not: the
    /// token must not travel in clear text because a challenge said so.
    pub(crate) fn token_url_for(&self, registry: &Url) -> Option<Url> {
        if registry.scheme() == "https" && self.realm.scheme() != "https" {
            return None;
        }
        let mut url = self.realm.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &self.service {
                query.append_pair("service", service);
            }
            if let Some(scope) = &self.scope {
                query.append_pair("scope", scope);
            }
        }
        Some(url)
    }
}

/// `key="value", key=value, …` (quoted values may hold `,` and `\"`).
fn params_of(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// The token in a token endpoint's JSON answer (`token`, or OAuth's `access_token`).
pub(crate) fn token_from_json(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(body).ok()?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_registry_challenge() {
        let c = Challenge::parse(
            r#"Bearer realm="https://registry.ollama.ai/v2/token",service="registry.ollama.ai",scope="repository:library/llama3.2:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm.as_str(), "https://registry.ollama.ai/v2/token");
        assert_eq!(c.service.as_deref(), Some("registry.ollama.ai"));
        assert_eq!(c.scope.as_deref(), Some("repository:library/llama3.2:pull"));
        let registry =
            Url::parse("https://registry.ollama.ai/v2/library/llama3.2/manifests/1b").unwrap();
        assert_eq!(
            c.token_url_for(&registry).unwrap().as_str(),
            "https://registry.ollama.ai/v2/token?service=registry.ollama.ai&scope=repository%3Alibrary%2Fllama3.2%3Apull"
        );
    }

    #[test]
    fn unquoted_spaced_and_escaped_values() {
        let c = Challenge::parse(
            r#"bearer  realm=http://127.0.0.1:9/t , scope="a,\"b\"", error="invalid_token""#,
        )
        .unwrap();
        assert_eq!(c.realm.as_str(), "http://127.0.0.1:9/t");
        assert_eq!(c.scope.as_deref(), Some(r#"a,"b""#));
        assert_eq!(c.service, None);
    }

    #[test]
    fn an_https_registry_never_sends_the_token_request_over_http() {
        let c = Challenge::parse(r#"Bearer realm="http://registry.test/token",scope="s""#).unwrap();
        let https = Url::parse("https://registry.test/v2/library/m/manifests/t").unwrap();
        assert_eq!(c.token_url_for(&https), None);
        // A plain-http registry (a local mirror) may name a plain-http realm.
        let http = Url::parse("http://127.0.0.1:9/v2/library/m/manifests/t").unwrap();
        assert!(c.token_url_for(&http).is_some());
    }

    #[test]
    fn other_schemes_and_bad_realms_are_not_challenges() {
        for h in [
            r#"Basic realm="x""#,
            r#"Bearer service="x""#,
            r#"Bearer realm="file:///etc/passwd""#,
            r#"Bearer realm="not a url""#,
            "Bearer",
            "",
        ] {
            assert_eq!(Challenge::parse(h), None, "{h}");
        }
    }

    #[test]
    fn token_answers() {
        assert_eq!(
            token_from_json(br#"{"token":"abc"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token_from_json(br#"{"access_token":"xyz","expires_in":60}"#).as_deref(),
            Some("xyz")
        );
        assert_eq!(token_from_json(br#"{"token":" "}"#), None);
        assert_eq!(token_from_json(b"nope"), None);
    }
}
