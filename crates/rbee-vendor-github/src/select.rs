//! Which assets of a release a reference means. Pure: no I/O.
//!
//! - `gh:o/r@tag/NAME`: the asset called NAME (exactly; a unique case-insensitive match also
//!   counts), or every asset matching NAME when it is a glob (`*.gguf`).
//! - `gh:o/r@tag`: the one model-like asset (`.gguf`, `.safetensors`, `.bin`, `.onnx`); none or
//!   several is an error listing the assets and how to name one.
//! - `--exclude` globs drop assets before choosing; `--include` globs, when given, choose among
//!   all assets instead of the model-like default, and narrow a named selection.
//!
//! Half-uploaded assets are never chosen, and a chosen asset whose name is not a safe single
//! file name is refused (a hostile API must not make us write outside the artifact folder).

use globset::{Glob, GlobSet, GlobSetBuilder};
use rbee_artifact::{
    Error, ResolveOptions, Result, human_bytes, quote_untrusted, validate_relative_path,
};

use crate::api::Asset;

/// File extensions that mark an asset as a model (or adapter, or tokenizer) rather than source
/// archives, checksums or binaries for other platforms.
pub(crate) const MODEL_EXTENSIONS: [&str; 4] = [".gguf", ".safetensors", ".bin", ".onnx"];

/// Most assets listed in one error message.
const LISTED_ASSETS: usize = 30;

/// The chosen assets (sorted by name) and a note for people on why.
#[derive(Debug)]
pub(crate) struct Selection<'a> {
    pub(crate) assets: Vec<&'a Asset>,
    pub(crate) note: String,
}

/// Names the release in messages: `reference` is how the user can name it again
/// (`gh:o/r@tag` or `gh:o/r`), `release` how to call it in prose (`release b4500 of o/r`).
#[derive(Debug, Clone)]
pub(crate) struct ReleaseLabel {
    pub(crate) reference: String,
    pub(crate) release: String,
}

/// Whether an asset name looks like a model file.
pub(crate) fn is_model_like(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    MODEL_EXTENSIONS.iter().any(|ext| lower.ends_with(ext))
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

fn glob_set(what: &str, patterns: &[String]) -> Result<GlobSet> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| {
            Error::InvalidRequest(format!(
                "the {what} glob `{pattern}` is not valid: {}; a glob looks like *.gguf or model-*-Q4_K_M.gguf",
                e.kind()
            ))
        })?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::InvalidRequest(format!("the {what} globs are not valid: {e}")))
}

/// Chooses the assets `wanted` (the reference's asset part) names, filtered by `options`.
pub(crate) fn select<'a>(
    assets: &'a [Asset],
    wanted: Option<&str>,
    options: &ResolveOptions,
    label: &ReleaseLabel,
) -> Result<Selection<'a>> {
    let include = glob_set("--include", &options.include)?;
    let exclude = glob_set("--exclude", &options.exclude)?;
    let uploaded: Vec<&Asset> = assets.iter().filter(|a| a.is_uploaded()).collect();
    let candidates: Vec<&Asset> = uploaded
        .iter()
        .copied()
        .filter(|a| !exclude.is_match(&a.name))
        .collect();
    let excluded = uploaded.len() - candidates.len();
    let filtered = if excluded > 0 {
        format!(" (after --exclude left out {excluded})")
    } else {
        String::new()
    };

    let (mut chosen, note) = match wanted {
        Some(wanted) => {
            let (chosen, how) = by_name(&candidates, wanted, label, &filtered)?;
            if options.include.is_empty() {
                (chosen, how)
            } else {
                let kept: Vec<&Asset> = chosen
                    .into_iter()
                    .filter(|a| include.is_match(&a.name))
                    .collect();
                if kept.is_empty() {
                    return Err(Error::InvalidRequest(format!(
                        "`{wanted}` in {} matches no --include glob ({}); drop --include or name another asset",
                        label.release,
                        options.include.join(", ")
                    )));
                }
                (kept, format!("{how}, narrowed by --include"))
            }
        }
        None if !options.include.is_empty() => {
            let kept: Vec<&Asset> = candidates
                .iter()
                .copied()
                .filter(|a| include.is_match(&a.name))
                .collect();
            if kept.is_empty() {
                return Err(Error::InvalidRequest(format!(
                    "no asset of {} matches --include {}{filtered}; {}",
                    label.release,
                    options.include.join(", "),
                    listing(&candidates, label)
                )));
            }
            (kept, "chose the assets matching --include".to_string())
        }
        None => {
            let models: Vec<&Asset> = candidates
                .iter()
                .copied()
                .filter(|a| is_model_like(&a.name))
                .collect();
            match models.as_slice() {
                [one] => (
                    vec![*one],
                    format!("chose `{}`, the only model file of the release", one.name),
                ),
                [] => {
                    return Err(Error::InvalidRequest(format!(
                        "{} has no model file ({}){filtered}; {}",
                        label.release,
                        MODEL_EXTENSIONS.join(", "),
                        listing(&candidates, label)
                    )));
                }
                several => {
                    return Err(Error::InvalidRequest(format!(
                        "{} has {} model files{filtered}, so which one is meant is ambiguous; {}",
                        label.release,
                        several.len(),
                        listing_of("model files", several, label)
                    )));
                }
            }
        }
    };

    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    chosen.dedup_by_key(|a| a.id);
    for asset in &chosen {
        check_safe_name(&asset.name)?;
    }
    Ok(Selection {
        assets: chosen,
        note,
    })
}

fn by_name<'a>(
    candidates: &[&'a Asset],
    wanted: &str,
    label: &ReleaseLabel,
    filtered: &str,
) -> Result<(Vec<&'a Asset>, String)> {
    if let Some(exact) = candidates.iter().find(|a| a.name == wanted) {
        return Ok((vec![*exact], format!("asset `{}`", exact.name)));
    }
    if is_glob(wanted) {
        let glob = Glob::new(wanted)
            .map_err(|e| {
                Error::InvalidRequest(format!(
                    "the asset glob `{wanted}` is not valid: {}; a glob looks like *.gguf",
                    e.kind()
                ))
            })?
            .compile_matcher();
        let matched: Vec<&Asset> = candidates
            .iter()
            .copied()
            .filter(|a| glob.is_match(&a.name))
            .collect();
        if matched.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "no asset of {} matches `{wanted}`{filtered}; {}",
                label.release,
                listing(candidates, label)
            )));
        }
        let note = format!("{} assets matching `{wanted}`", matched.len());
        return Ok((matched, note));
    }
    let folded: Vec<&Asset> = candidates
        .iter()
        .copied()
        .filter(|a| a.name.eq_ignore_ascii_case(wanted))
        .collect();
    if let [one] = folded.as_slice() {
        return Ok((
            vec![*one],
            format!("asset `{}` (matched `{wanted}` ignoring case)", one.name),
        ));
    }
    Err(Error::InvalidRequest(format!(
        "{} has no asset named `{wanted}`{filtered}; {}",
        label.release,
        listing(candidates, label)
    )))
}

/// "its assets are: a (1 KiB), b (2 MiB); name one: gh:o/r@tag/NAME …".
fn listing(assets: &[&Asset], label: &ReleaseLabel) -> String {
    listing_of("assets", assets, label)
}

fn listing_of(what: &str, assets: &[&Asset], label: &ReleaseLabel) -> String {
    if assets.is_empty() {
        return "it has no (uploaded) assets".to_string();
    }
    let mut names: Vec<String> = assets
        .iter()
        .take(LISTED_ASSETS)
        .map(|a| format!("{} ({})", shown(&a.name), human_bytes(a.size)))
        .collect();
    if assets.len() > LISTED_ASSETS {
        names.push(format!("… and {} more", assets.len() - LISTED_ASSETS));
    }
    format!(
        "its {what} are: {}; name one as {}/NAME (a glob such as {}/*.gguf takes several)",
        names.join(", "),
        label.reference,
        label.reference
    )
}

/// An asset name for a message: as it is when safe, else quoted and escaped.
pub(crate) fn shown(name: &str) -> String {
    if validate_relative_path(name).is_ok() {
        name.to_string()
    } else {
        quote_untrusted(name)
    }
}

fn check_safe_name(name: &str) -> Result<()> {
    let reason = if name.contains('/') {
        Some("it contains `/`".to_string())
    } else {
        validate_relative_path(name).err().map(|e| e.to_string())
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(Error::Protocol {
            message: format!(
                "the GitHub API listed an asset named {}, which is not a safe file name ({reason}); refusing to write it",
                quote_untrusted(name)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asset(id: u64, name: &str) -> Asset {
        Asset {
            id,
            name: name.to_string(),
            url: format!("https://api.github.com/repos/o/r/releases/assets/{id}"),
            browser_download_url: format!("https://github.com/o/r/releases/download/v1/{name}"),
            size: 1024 * id,
            digest: None,
            state: Some("uploaded".into()),
            updated_at: None,
        }
    }

    fn release(names: &[&str]) -> Vec<Asset> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| asset(i as u64 + 1, n))
            .collect()
    }

    fn label() -> ReleaseLabel {
        ReleaseLabel {
            reference: "gh:o/r@v1".into(),
            release: "release v1 of o/r".into(),
        }
    }

    fn names(s: &Selection<'_>) -> Vec<String> {
        s.assets.iter().map(|a| a.name.clone()).collect()
    }

    fn pick(
        assets: &[Asset],
        wanted: Option<&str>,
        include: &[&str],
        exclude: &[&str],
    ) -> Result<Vec<String>> {
        let options = ResolveOptions::with_globs(
            include.iter().map(|s| s.to_string()).collect(),
            exclude.iter().map(|s| s.to_string()).collect(),
        );
        select(assets, wanted, &options, &label()).map(|s| names(&s))
    }

    fn message(r: Result<Vec<String>>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.code(), "invalid_request", "{e}");
        e.to_string()
    }

    #[test]
    fn exact_name_wins_even_with_glob_characters() {
        let a = release(&["model.gguf", "model[1].gguf", "notes.txt"]);
        assert_eq!(
            pick(&a, Some("notes.txt"), &[], &[]).unwrap(),
            ["notes.txt"]
        );
        assert_eq!(
            pick(&a, Some("model[1].gguf"), &[], &[]).unwrap(),
            ["model[1].gguf"]
        );
        assert_eq!(
            pick(&a, Some("MODEL.GGUF"), &[], &[]).unwrap(),
            ["model.gguf"]
        );
    }

    #[test]
    fn glob_selects_several_sorted() {
        let a = release(&[
            "z-Q8_0.gguf",
            "a-Q4_K_M.gguf",
            "README.md",
            "a-Q4_K_M.gguf.sha256",
        ]);
        assert_eq!(
            pick(&a, Some("*.gguf"), &[], &[]).unwrap(),
            ["a-Q4_K_M.gguf", "z-Q8_0.gguf"]
        );
        assert_eq!(
            pick(&a, Some("*Q4_K_M*"), &[], &[]).unwrap(),
            ["a-Q4_K_M.gguf", "a-Q4_K_M.gguf.sha256"]
        );
        let msg = message(pick(&a, Some("*.onnx"), &[], &[]));
        assert!(
            msg.contains("matches `*.onnx`") && msg.contains("README.md"),
            "{msg}"
        );
        assert!(msg.contains("gh:o/r@v1/NAME"), "{msg}");
    }

    #[test]
    fn default_is_the_single_model_like_asset() {
        let a = release(&[
            "llama.cpp-src.tar.gz",
            "tokenizer.SafeTensors",
            "SHA256SUMS",
        ]);
        let options = ResolveOptions::default();
        let s = select(&a, None, &options, &label()).unwrap();
        assert_eq!(names(&s), ["tokenizer.SafeTensors"]);
        assert!(s.note.contains("only model file"), "{}", s.note);
        for ext in MODEL_EXTENSIONS {
            assert!(is_model_like(&format!("x{ext}")));
        }
        assert!(!is_model_like("x.gguf.sha256"));
    }

    #[test]
    fn no_model_or_several_models_is_an_error_listing_assets() {
        let a = release(&["src.tar.gz", "SHA256SUMS"]);
        let msg = message(pick(&a, None, &[], &[]));
        assert!(msg.contains("has no model file"), "{msg}");
        assert!(
            msg.contains("src.tar.gz (") && msg.contains("SHA256SUMS ("),
            "{msg}"
        );
        assert!(msg.contains("gh:o/r@v1/NAME"), "{msg}");

        let a = release(&["a.gguf", "b.gguf", "c.txt"]);
        let msg = message(pick(&a, None, &[], &[]));
        assert!(
            msg.contains("2 model files") && msg.contains("ambiguous"),
            "{msg}"
        );
        assert!(msg.contains("a.gguf") && msg.contains("b.gguf"), "{msg}");
        assert!(
            !msg.contains("c.txt"),
            "only the candidates are listed: {msg}"
        );

        let msg = message(pick(&[], None, &[], &[]));
        assert!(msg.contains("no (uploaded) assets"), "{msg}");
    }

    #[test]
    fn missing_name_lists_assets() {
        let a = release(&["a.gguf"]);
        let msg = message(pick(&a, Some("b.gguf"), &[], &[]));
        assert!(
            msg.contains("no asset named `b.gguf`") && msg.contains("a.gguf (1.0 KiB)"),
            "{msg}"
        );
    }

    #[test]
    fn exclude_and_include_filter() {
        let a = release(&["a.gguf", "b.gguf", "tok.json"]);
        assert_eq!(pick(&a, None, &[], &["b.*"]).unwrap(), ["a.gguf"]);
        assert_eq!(pick(&a, None, &["*.json"], &[]).unwrap(), ["tok.json"]);
        assert_eq!(
            pick(&a, None, &["*"], &["a.*"]).unwrap(),
            ["b.gguf", "tok.json"]
        );
        assert_eq!(
            pick(&a, Some("*"), &["*.gguf"], &[]).unwrap(),
            ["a.gguf", "b.gguf"]
        );
        let msg = message(pick(&a, Some("a.gguf"), &[], &["a.gguf"]));
        assert!(msg.contains("after --exclude left out 1"), "{msg}");
        let msg = message(pick(&a, Some("tok.json"), &["*.gguf"], &[]));
        assert!(msg.contains("--include"), "{msg}");
        let msg = message(pick(&a, None, &["*.onnx"], &[]));
        assert!(msg.contains("--include *.onnx"), "{msg}");
        let msg = message(pick(&a, None, &["[oops"], &[]));
        assert!(msg.contains("`[oops`"), "{msg}");
    }

    #[test]
    fn unfinished_uploads_are_never_chosen() {
        let mut a = release(&["a.gguf", "b.gguf"]);
        a[1].state = Some("open".into());
        assert_eq!(pick(&a, None, &[], &[]).unwrap(), ["a.gguf"]);
        message(pick(&a, Some("b.gguf"), &[], &[]));
    }

    #[test]
    fn hostile_names_are_refused() {
        for bad in [
            "../evil.gguf",
            "..",
            "a\\b.gguf",
            "x\n.gguf",
            "/abs.gguf",
            "c:.gguf",
        ] {
            let a = release(&[bad]);
            let e = select(&a, Some("*"), &ResolveOptions::default(), &label()).unwrap_err();
            assert_eq!(e.code(), "protocol", "{bad}: {e}");
            assert!(e.to_string().contains("not a safe file name"), "{e}");
        }
    }

    #[test]
    fn long_listings_are_cut() {
        let many: Vec<String> = (0..40).map(|i| format!("f{i:02}.txt")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let a = release(&refs);
        let msg = message(pick(&a, None, &[], &[]));
        assert!(msg.contains("… and 10 more"), "{msg}");
    }

    mod fuzz {
        use super::super::*;
        use super::label;
        use crate::api::Release;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z0-9._-]{1,20}\\.gguf",
                "\\PC{0,30}",
                "(\\.\\.|/|[\\x00-\\x1f\\u{1b}\\u{9b}]){0,3}[a-z]{0,8}(\\.gguf)?",
                "[a-z]{250,300}\\.gguf",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Garbage bodies: no panic.
            #[test]
            fn release_bodies_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = serde_json::from_slice::<Release>(&bytes);
                let _ = serde_json::from_slice::<Vec<Release>>(&bytes);
            }

            /// Releases with hostile asset names: whatever is chosen is a safe file name, and
            /// no message carries a control character.
            #[test]
            fn chosen_assets_have_safe_names(
                names in proptest::collection::vec(name(), 0..8),
                wanted in proptest::option::of(name()),
            ) {
                let assets: Vec<serde_json::Value> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| serde_json::json!({
                        "id": i, "name": n, "url": "https://api.github.com/x", "size": 10,
                        "browser_download_url": "https://github.com/x",
                    }))
                    .collect();
                let body = serde_json::json!({ "tag_name": "v1", "assets": assets }).to_string();
                let release: Release = serde_json::from_str(&body).unwrap();
                let options = ResolveOptions::default();
                match select(&release.assets, wanted.as_deref(), &options, &label()) {
                    Ok(s) => {
                        for a in &s.assets {
                            prop_assert!(validate_relative_path(&a.name).is_ok() && !a.name.contains('/'));
                        }
                        prop_assert!(!s.note.chars().any(char::is_control) || wanted.is_some());
                    }
                    Err(e) => {
                        let text = e.to_string();
                        let from_user = wanted.as_deref().is_some_and(|w| w.chars().any(char::is_control));
                        prop_assert!(from_user || !text.chars().any(char::is_control), "{text:?}");
                    }
                }
            }
        }
    }
}
