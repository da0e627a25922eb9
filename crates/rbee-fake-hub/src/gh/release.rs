//! A repo's release folders read as GitHub would list them: settings, who may see them, and
//! releases with their assets, newest first.

use std::cmp::Ordering;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::hashes::{HashKind, sha1_hex};
use crate::state::HubState;

pub(super) const REPO_SETTINGS: &str = ".repo.json";
pub(super) const RELEASE_SETTINGS: &str = ".release.json";
pub(super) const DOCS: &str = "https://docs.github.com/rest/releases/releases";

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct RepoSettings {
    pub(super) private: bool,
    pub(super) tokens: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct ReleaseSettings {
    pub(super) name: Option<String>,
    pub(super) draft: bool,
    pub(super) prerelease: bool,
    pub(super) published_at: Option<String>,
    pub(super) body: Option<String>,
    pub(super) target_commitish: Option<String>,
}

#[derive(Debug)]
pub(super) struct Repo {
    pub(super) owner: String,
    pub(super) name: String,
    pub(super) dir: PathBuf,
}

#[derive(Debug)]
pub(super) struct Asset {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) size: u64,
    pub(super) mtime: SystemTime,
    pub(super) sha256: String,
}

#[derive(Debug)]
pub(super) struct Release {
    pub(super) id: u64,
    pub(super) tag: String,
    /// Folder name under the repo (the tag, percent-encoded where needed).
    pub(super) folder: String,
    pub(super) settings: ReleaseSettings,
    pub(super) published: DateTime<Utc>,
    pub(super) assets: Vec<Asset>,
}

/// Why a GitHub request fails.
#[derive(Debug)]
pub(super) enum GhError {
    NotFound,
    BadCredentials,
    RateLimited,
    Internal(String),
}

/// A stable positive id (below 2^48, so exact in every JSON reader) from a name.
pub(super) fn stable_id(kind: &str, name: &str) -> u64 {
    let h = sha1_hex(format!("{kind}:{name}").as_bytes());
    u64::from_str_radix(&h[..12], 16).unwrap_or(1).max(1)
}

/// Compares tags with digit runs as numbers, so `v1.10` sorts after `v1.9`.
pub(super) fn natural_cmp(a: &str, b: &str) -> Ordering {
    fn runs(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    for (x, y) in runs(a).into_iter().zip(runs(b)) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

pub(super) fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("xz") => "application/x-xz",
        Some("txt" | "md") => "text/plain",
        _ => "application/octet-stream",
    }
}

pub(super) fn plain_name(s: &str) -> bool {
    !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\']) && !s.contains('\0')
}

pub(super) fn token_of(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.trim().to_owned())
}

pub(super) async fn read_json<T: for<'de> Deserialize<'de> + Default>(
    path: PathBuf,
) -> Result<T, GhError> {
    match tokio::fs::read(&path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| GhError::Internal(format!("{}: {e}", path.display()))),
        Err(_) => Ok(T::default()),
    }
}

/// Finds the repo and checks the caller may see it. Unknown tokens are refused everywhere
/// (GitHub's "Bad credentials"); private repos answer 404 without an accepted token.
pub(super) async fn open_repo(
    state: &HubState,
    headers: &HeaderMap,
    owner: &str,
    name: &str,
) -> Result<Repo, GhError> {
    let dir = state.config.root.join("gh").join(owner).join(name);
    let exists = plain_name(owner)
        && plain_name(name)
        && tokio::fs::metadata(&dir).await.is_ok_and(|m| m.is_dir());
    let settings: RepoSettings = if exists {
        read_json(dir.join(REPO_SETTINGS)).await?
    } else {
        RepoSettings::default()
    };
    let token = token_of(headers);
    let accepted = token.as_ref().is_some_and(|t| {
        state.config.gh_tokens.iter().any(|a| a == t) || settings.tokens.iter().any(|a| a == t)
    });
    if token.is_some() && !accepted {
        return Err(GhError::BadCredentials);
    }
    if !exists || (settings.private && !accepted) {
        return Err(GhError::NotFound);
    }
    Ok(Repo {
        owner: owner.to_owned(),
        name: name.to_owned(),
        dir,
    })
}

/// Every release of the repo, newest first (published date, then tag).
pub(super) async fn releases(state: &HubState, repo: &Repo) -> Result<Vec<Release>, GhError> {
    let mut rd = tokio::fs::read_dir(&repo.dir)
        .await
        .map_err(|e| GhError::Internal(format!("{}: {e}", repo.dir.display())))?;
    let mut out = Vec::new();
    while let Ok(Some(entry)) = rd.next_entry().await {
        let folder = entry.file_name().to_string_lossy().into_owned();
        if folder.starts_with('.') || !entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let tag = percent_encoding::percent_decode_str(&folder)
            .decode_utf8_lossy()
            .into_owned();
        let dir = entry.path();
        let settings: ReleaseSettings = read_json(dir.join(RELEASE_SETTINGS)).await?;
        let published = match &settings.published_at {
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    GhError::Internal(format!(
                        "{}: published_at {s:?} is not RFC 3339: {e}",
                        dir.join(RELEASE_SETTINGS).display()
                    ))
                })?
                .with_timezone(&Utc),
            None => entry
                .metadata()
                .await
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or_default(),
        };
        let full = format!("{}/{}", repo.owner, repo.name);
        let mut assets = Vec::new();
        let mut files = tokio::fs::read_dir(&dir)
            .await
            .map_err(|e| GhError::Internal(format!("{}: {e}", dir.display())))?;
        while let Ok(Some(f)) = files.next_entry().await {
            let name = f.file_name().to_string_lossy().into_owned();
            let Ok(meta) = f.metadata().await else {
                continue;
            };
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
            let abs = f.path();
            let sha256 = state
                .hashes
                .get(&abs, meta.len(), mtime, HashKind::Sha256)
                .await
                .map_err(|e| GhError::Internal(format!("{}: {e}", abs.display())))?;
            assets.push(Asset {
                id: stable_id("asset", &format!("{full}/{tag}/{name}")),
                name,
                size: meta.len(),
                mtime,
                sha256,
            });
        }
        assets.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(Release {
            id: stable_id("release", &format!("{full}/{tag}")),
            tag,
            folder,
            settings,
            published,
            assets,
        });
    }
    out.sort_by(|a, b| {
        b.published
            .cmp(&a.published)
            .then_with(|| natural_cmp(&b.tag, &a.tag))
    });
    Ok(out)
}
