//! The JSON GitHub answers with for releases and assets.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::state::HubState;
use crate::url_path::encode_segment;

use super::release::{Asset, Release, Repo, content_type, stable_id};

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn api_base(state: &HubState) -> String {
    state.hub_url.as_str().trim_end_matches('/').to_owned()
}

pub(super) fn asset_json(state: &HubState, repo: &Repo, release: &Release, a: &Asset) -> Value {
    let base = api_base(state);
    let (o, r) = (&repo.owner, &repo.name);
    let created = rfc3339(DateTime::<Utc>::from(a.mtime));
    let lies = state.listed_lies(&format!("gh/{o}/{r}/{}/{}", release.folder, a.name));
    json!({
        "url": format!("{base}/repos/{o}/{r}/releases/assets/{}", a.id),
        "id": a.id,
        "node_id": format!("RA_{}", a.id),
        "name": lies.name.as_deref().unwrap_or(&a.name),
        "label": "",
        "uploader": { "login": o, "id": stable_id("user", o), "type": "User" },
        "content_type": content_type(&a.name),
        "state": "uploaded",
        "size": lies.size.unwrap_or(a.size),
        "digest": format!("sha256:{}", lies.sha256.as_deref().unwrap_or(&a.sha256)),
        "download_count": 0,
        "created_at": created,
        "updated_at": created,
        "browser_download_url": format!(
            "{base}/{o}/{r}/releases/download/{}/{}",
            encode_segment(&release.tag),
            encode_segment(&a.name)
        ),
    })
}

pub(super) fn release_json(state: &HubState, repo: &Repo, rel: &Release) -> Value {
    let base = api_base(state);
    let (o, r) = (&repo.owner, &repo.name);
    let tag = encode_segment(&rel.tag);
    let published = rfc3339(rel.published);
    json!({
        "url": format!("{base}/repos/{o}/{r}/releases/{}", rel.id),
        "assets_url": format!("{base}/repos/{o}/{r}/releases/{}/assets", rel.id),
        "upload_url": format!("{base}/repos/{o}/{r}/releases/{}/assets{{?name,label}}", rel.id),
        "html_url": format!("{base}/{o}/{r}/releases/tag/{tag}"),
        "id": rel.id,
        "author": { "login": o, "id": stable_id("user", o), "type": "User" },
        "node_id": format!("RE_{}", rel.id),
        "tag_name": rel.tag,
        "target_commitish": rel.settings.target_commitish.as_deref().unwrap_or("main"),
        "name": rel.settings.name.as_deref().unwrap_or(&rel.tag),
        "draft": rel.settings.draft,
        "immutable": false,
        "prerelease": rel.settings.prerelease,
        "created_at": published,
        "published_at": if rel.settings.draft { Value::Null } else { json!(published) },
        "assets": rel.assets.iter().map(|a| asset_json(state, repo, rel, a)).collect::<Vec<_>>(),
        "tarball_url": format!("{base}/repos/{o}/{r}/tarball/{tag}"),
        "zipball_url": format!("{base}/repos/{o}/{r}/zipball/{tag}"),
        "body": rel.settings.body.as_deref().unwrap_or(""),
    })
}
