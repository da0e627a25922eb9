//! The Hub's error answers (status + `X-Error-Code` + `X-Error-Message`) as clear errors.
//!
//! | Hub answer | error | message says |
//! |---|---|---|
//! | `GatedRepo` | `Unauthorized` | accept the licence at `<endpoint>/<org>/<repo>`, then set HF_TOKEN |
//! | `RepoNotFound`, or 401/404 without a code | `NotFound` | check the name; private → HF_TOKEN |
//! | `RevisionNotFound` | `NotFound` | check the branch, tag or commit |
//! | `EntryNotFound` | `NotFound` | the files that do exist |
//! | 401 with a token, no code | `Unauthorized` | the token is invalid or expired |
//! | 403 without a code | `Unauthorized` | access refused, with the Hub's reason |
//! | 429 (after the engine's retries) | `RateLimited` | wait; a token raises the limit |
//! | 5xx (after retries) | `Network` | try again later |

use std::time::Duration;

use rbee_artifact::{Error, Secret};
use url::Url;

/// What was being asked for when the Hub said no.
#[derive(Debug, Clone)]
pub(crate) struct Context<'a> {
    pub endpoint: &'a Url,
    pub org: &'a str,
    pub repo: &'a str,
    pub revision: &'a str,
    /// The file asked for, for `EntryNotFound`.
    pub path: Option<&'a str>,
    /// Files that exist, listed on `EntryNotFound`.
    pub known_files: &'a [String],
    /// The token sent, if any (to say whether it is to blame, and to redact echoes of it).
    pub token: Option<&'a Secret>,
    /// The URL asked (no credentials in it).
    pub url: &'a Url,
}

/// An error answer from the Hub.
#[derive(Debug, Clone, Default)]
pub(crate) struct Answer {
    pub status: u16,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub retry_after: Option<Duration>,
}

const INVALID_CREDENTIALS: &str = "Invalid credentials in Authorization header";

/// Maps an error answer to an [`Error`] whose message says what to do. Never includes the token.
pub(crate) fn map(answer: &Answer, ctx: &Context<'_>) -> Error {
    let name = format!("{}/{}", ctx.org, ctx.repo);
    let endpoint = ctx.endpoint.as_str().trim_end_matches('/');
    let page = crate::api::repo_page_url(ctx.endpoint, ctx.org, ctx.repo);
    let hub_says = answer
        .error_message
        .as_deref()
        .map(|m| {
            let m = ctx.token.map_or_else(|| m.to_string(), |t| t.redact(m));
            let m: String = m.chars().filter(|c| !c.is_control()).take(300).collect();
            format!(" (the Hub says: {m})")
        })
        .unwrap_or_default();
    let has_token = ctx.token.is_some();
    let token_refused = has_token
        && answer.status == 401
        && answer
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains(INVALID_CREDENTIALS));

    let code = answer.error_code.as_deref();
    match code {
        Some("GatedRepo") => Error::Unauthorized {
            message: if has_token {
                format!(
                    "{name} is a gated model and the account of your HuggingFace token has not been granted access: accept the licence at {page} (approval can take a while), then retry"
                )
            } else {
                format!(
                    "{name} is a gated model: accept the licence at {page}, then set HF_TOKEN to a token of that account (create one at {endpoint}/settings/tokens)"
                )
            },
        },
        Some("RevisionNotFound") => Error::NotFound {
            message: format!(
                "revision `{}` does not exist in {name}: check the branch, tag or commit (the default is main){hub_says}",
                ctx.revision
            ),
        },
        Some("EntryNotFound") => Error::NotFound {
            message: entry_not_found(&name, ctx),
        },
        _ if token_refused => token_refused_error(endpoint),
        Some("RepoNotFound") => repo_not_found(&name, endpoint, answer.status, has_token),
        _ => match answer.status {
            401 if has_token => token_refused_error(endpoint),
            401 | 404 => repo_not_found(&name, endpoint, answer.status, has_token),
            403 => Error::Unauthorized {
                message: format!(
                    "{endpoint} refused access to {name} (403){hub_says}; check that HF_TOKEN belongs to an account that can read it"
                ),
            },
            429 => Error::RateLimited {
                message: format!(
                    "{endpoint} is rate-limiting requests (429) and retrying did not help{}{}",
                    answer
                        .retry_after
                        .map(|d| format!("; it asks to wait {} s", d.as_secs()))
                        .unwrap_or_default(),
                    if has_token {
                        String::new()
                    } else {
                        "; set HF_TOKEN: signed-in requests get a higher limit".to_string()
                    }
                ),
                retry_after: answer.retry_after,
            },
            500..=599 => Error::Network {
                message: format!(
                    "{endpoint} answered {} for {} after retries{hub_says}; try again later",
                    answer.status, ctx.url
                ),
                source: None,
            },
            status => Error::Protocol {
                message: format!("unexpected answer {status} from {}{hub_says}", ctx.url),
            },
        },
    }
}

fn token_refused_error(endpoint: &str) -> Error {
    Error::Unauthorized {
        message: format!(
            "{endpoint} refused the HuggingFace token (from HF_TOKEN or $HF_HOME/token): it is invalid or expired; create a new one at {endpoint}/settings/tokens, or unset HF_TOKEN for public models"
        ),
    }
}

fn repo_not_found(name: &str, endpoint: &str, status: u16, has_token: bool) -> Error {
    let private = if has_token {
        if status == 401 {
            "; if it is private, check that your HuggingFace token is valid and can read it"
        } else {
            "; if it is private, your HuggingFace token cannot read it"
        }
    } else {
        "; if it is private, set HF_TOKEN to a token that can read it"
    };
    Error::NotFound {
        message: format!("repository {name} was not found at {endpoint}: check the name{private}"),
    }
}

fn entry_not_found(name: &str, ctx: &Context<'_>) -> String {
    let path = ctx.path.unwrap_or("the file");
    let at = if ctx.revision == "main" {
        String::new()
    } else {
        format!("@{}", ctx.revision)
    };
    if ctx.known_files.is_empty() {
        return format!("`{path}` does not exist in {name}{at}");
    }
    const SHOWN: usize = 30;
    let shown: Vec<&str> = ctx
        .known_files
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect();
    let more = ctx.known_files.len().saturating_sub(SHOWN);
    format!(
        "`{path}` does not exist in {name}{at}; it has: {}{}",
        shown.join(", "),
        if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(answer: Answer, token: Option<&Secret>, known: &[String]) -> Error {
        let endpoint = Url::parse("https://hub.example").unwrap();
        let url = Url::parse("https://hub.example/api/models/o/r/revision/main").unwrap();
        map(
            &answer,
            &Context {
                endpoint: &endpoint,
                org: "o",
                repo: "r",
                revision: "main",
                path: Some("x.gguf"),
                known_files: known,
                token,
                url: &url,
            },
        )
    }

    fn answer(status: u16, code: Option<&str>, message: Option<&str>) -> Answer {
        Answer {
            status,
            error_code: code.map(str::to_string),
            error_message: message.map(str::to_string),
            retry_after: None,
        }
    }

    #[test]
    fn each_code_has_its_message() {
        let token = Secret::new("hf_SECRETSECRET").unwrap();
        let e = with(answer(401, Some("RepoNotFound"), None), None, &[]);
        assert_eq!(e.code(), "not_found");
        assert!(e.to_string().contains("check the name") && e.to_string().contains("set HF_TOKEN"));

        let e = with(answer(403, Some("GatedRepo"), None), None, &[]);
        assert_eq!(e.code(), "unauthorized");
        let m = e.to_string();
        assert!(
            m.contains("accept the licence at https://hub.example/o/r") && m.contains("HF_TOKEN"),
            "{m}"
        );

        let e = with(answer(403, Some("GatedRepo"), None), Some(&token), &[]);
        assert!(e.to_string().contains("not been granted access"));

        let e = with(answer(404, Some("RevisionNotFound"), None), None, &[]);
        assert!(e.to_string().contains("revision `main` does not exist"));

        let files = vec!["a.gguf".to_string(), "b.gguf".to_string()];
        let e = with(answer(404, Some("EntryNotFound"), None), None, &files);
        assert!(
            e.to_string()
                .contains("`x.gguf` does not exist in o/r; it has: a.gguf, b.gguf")
        );

        let e = with(
            answer(
                401,
                None,
                Some("Invalid credentials in Authorization header"),
            ),
            Some(&token),
            &[],
        );
        assert_eq!(e.code(), "unauthorized");
        assert!(e.to_string().contains("invalid or expired"));
        let e = with(answer(401, None, None), Some(&token), &[]);
        assert!(e.to_string().contains("invalid or expired"));
        let e = with(answer(401, None, None), None, &[]);
        assert_eq!(e.code(), "not_found");

        let mut a = answer(429, None, None);
        a.retry_after = Some(Duration::from_secs(30));
        let e = with(a, None, &[]);
        assert!(matches!(e, Error::RateLimited { retry_after: Some(d), .. } if d.as_secs() == 30));
        assert_eq!(with(answer(503, None, None), None, &[]).code(), "network");
        assert_eq!(with(answer(418, None, None), None, &[]).code(), "protocol");
    }

    #[test]
    fn never_echoes_the_token() {
        let token = Secret::new("hf_SECRETSECRET").unwrap();
        for status in [401, 403, 404, 418, 429, 500] {
            let e = with(
                answer(status, None, Some("bad token hf_SECRETSECRET\nsecond line")),
                Some(&token),
                &[],
            );
            let text = format!("{e} {e:?} {}", e.report());
            assert!(!text.contains("SECRETSECRET"), "{status}: {text}");
        }
    }
}
