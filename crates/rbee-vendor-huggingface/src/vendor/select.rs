//! Which of a repository's files a reference and the include/exclude globs ask for.

use rbee_artifact::{Error, Result};

use crate::reference::{HfRef, HfSelector};

use super::HuggingFaceVendor;
use crate::api;
use crate::files::RepoFile;
use crate::hub_error::{self, Answer};
use crate::quant::{is_gguf_repo, parse_gguf_name, select_quant, split_set_of};
use crate::snapshot::{PathFilter, select_snapshot};

impl HuggingFaceVendor {
    /// Picks the files of `listing` that `hf` and the globs ask for.
    pub(super) fn select<'a>(
        &self,
        hf: &HfRef,
        revision: &str,
        files: &'a [RepoFile],
        filter: &PathFilter,
        notes: &mut Vec<String>,
    ) -> Result<Vec<&'a RepoFile>> {
        let name = format!("{}/{}", hf.org, hf.repo);
        let chosen: Vec<String> = match &hf.selector {
            HfSelector::File(path) => {
                if filter.has_include() || filter.has_exclude() {
                    notes.push(
                        "--include/--exclude do not apply when a single file is named".into(),
                    );
                }
                if files.iter().any(|f| &f.path == path) {
                    // One part of a split set is useless alone: take the set, as llama.cpp does.
                    let Some((parts, count)) = split_set_of(files, path) else {
                        return Ok(files.iter().filter(|f| &f.path == path).collect());
                    };
                    if parts.len() != count as usize {
                        return Err(Error::InvalidRequest(format!(
                            "{path} is part of a split set of {count} files, but {name} has only {} of them",
                            parts.len()
                        )));
                    }
                    notes.push(format!(
                        "{path} is one part of a split set: taking all {count} parts"
                    ));
                    return Ok(files.iter().filter(|f| parts.contains(&f.path)).collect());
                }
                let known: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
                let url =
                    api::resolve_url(&self.config.endpoint, &hf.org, &hf.repo, revision, path);
                let mut ctx = self.context(hf, revision, &url);
                ctx.path = Some(path);
                ctx.known_files = &known;
                let answer = Answer {
                    status: 404,
                    error_code: Some("EntryNotFound".into()),
                    ..Answer::default()
                };
                return Err(hub_error::map(&answer, &ctx));
            }
            HfSelector::Fit => {
                return Err(Error::InvalidRequest(format!(
                    "hf:{name}:fit asks for the quantization that fits this machine's GPUs, which only the command line can judge: run `rbee model download hf:{name}:fit` (or `--dry-run` to see the choice), or name a quantization"
                )));
            }
            _ if filter.has_include() => {
                let wanted = match &hf.selector {
                    HfSelector::Quant(q) => Some(q.as_str()),
                    _ => None,
                };
                let picked: Vec<String> = files
                    .iter()
                    .filter(|f| filter.included(&f.path))
                    .filter(|f| match (wanted, parse_gguf_name(&f.path)) {
                        // With `:QUANT`, model GGUFs of other quantizations stay out.
                        (Some(q), Some(g)) if !g.mmproj => {
                            g.quant.is_some_and(|gq| gq.eq_ignore_ascii_case(q))
                        }
                        _ => true,
                    })
                    .map(|f| f.path.clone())
                    .collect();
                if picked.is_empty() {
                    let listed: Vec<&str> =
                        files.iter().take(30).map(|f| f.path.as_str()).collect();
                    return Err(Error::InvalidRequest(format!(
                        "no file of {name} matches --include{}; it has: {}",
                        wanted
                            .map(|q| format!(" in quantization {q}"))
                            .unwrap_or_default(),
                        listed.join(", ")
                    )));
                }
                notes.push(format!(
                    "took the files matching --include ({})",
                    picked.len()
                ));
                picked
            }
            HfSelector::Quant(q) => {
                let choice = select_quant(&name, files, Some(q))?;
                notes.extend(choice.notes.iter().cloned());
                choice.paths()
            }
            HfSelector::Default if is_gguf_repo(files) => {
                let choice = select_quant(&name, files, None)?;
                notes.extend(choice.notes.iter().cloned());
                choice.paths()
            }
            HfSelector::Default => {
                let choice = select_snapshot(&name, files)?;
                notes.extend(choice.notes.iter().cloned());
                choice.paths
            }
        };
        let before = chosen.len();
        let chosen: std::collections::HashSet<&str> = chosen.iter().map(String::as_str).collect();
        let kept: Vec<&RepoFile> = files
            .iter()
            .filter(|f| chosen.contains(f.path.as_str()) && !filter.excluded(&f.path))
            .collect();
        if kept.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "--exclude left no file of {name} to take (it removed all {before})"
            )));
        }
        if kept.len() < before {
            notes.push(format!(
                "--exclude left out {} file(s)",
                before - kept.len()
            ));
        }
        Ok(kept)
    }
}
