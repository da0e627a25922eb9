//! Choosing GGUF files by quantization: pure functions over a repository's file list.
//!
//! GGUF repositories hold one model in many quantizations, one file (or one split set) each,
//! named like `tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf`, `Llama-3.2-1B-Instruct-Q4_K_M.gguf`,
//! `qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf`, `Q8_0/Model-Q8_0-00001-of-00003.gguf` or
//! `Qwen3-30B-A3B-UD-Q4_K_XL.gguf`. As with llama.cpp's `-hf` and Ollama's `hf.co/…:TAG`:
//!
//! - the quantization is a *token* of the file name (between `-`, `.` or `_` separators),
//!   compared case-insensitively and exactly: `Q4_K` does not pick `Q4_K_M`;
//! - unsloth's dynamic quants keep their `UD-` prefix (`UD-Q4_K_XL`); asking for `Q4_K_XL`
//!   takes `UD-Q4_K_XL` only when there is no plain `Q4_K_XL`;
//! - with no quantization asked for, the first of [`DEFAULT_PREFERENCE`] present wins, else the
//!   smallest model in the repository;
//! - a split set (`…-00001-of-00003.gguf`) is one choice: every part is taken;
//! - `mmproj-*.gguf` files are vision projectors, not quantizations of the model. Like
//!   llama.cpp's `-hf`, the projector that fits is taken along with the model (the one in the
//!   same quantization, else F16, BF16, F32, Q8_0, else the smallest), because a vision model
//!   cannot run without it; `--exclude 'mmproj*'` leaves it out.

use std::collections::BTreeMap;

use rbee_artifact::{Error, human_bytes};

use crate::files::{RepoFile, depth, file_name};

/// The quantizations taken, in order, when none is asked for.
pub const DEFAULT_PREFERENCE: [&str; 5] = ["Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q8_0"];

/// Projector quantizations preferred, in order, when none matches the model's.
const MMPROJ_PREFERENCE: [&str; 5] = ["F16", "BF16", "F32", "FP16", "Q8_0"];

/// What a GGUF file name says about the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GgufName {
    /// The quantization label, upper-case (`Q4_K_M`, `UD-Q4_K_XL`, `F16`), when the name has one.
    pub quant: Option<String>,
    /// Part `index` of `count` of a split set.
    pub split: Option<(u32, u32)>,
    /// A vision projector (`mmproj`), not a quantization of the model.
    pub mmproj: bool,
}

/// Reads a GGUF path's name; `None` when it is not a `.gguf` file.
///
/// ```
/// use rbee_vendor_huggingface::parse_gguf_name;
/// let n = parse_gguf_name("Q8_0/Model-Q8_0-00002-of-00003.gguf").unwrap();
/// assert_eq!(n.quant.as_deref(), Some("Q8_0"));
/// assert_eq!(n.split, Some((2, 3)));
/// assert!(!n.mmproj);
/// ```
pub fn parse_gguf_name(path: &str) -> Option<GgufName> {
    let name = file_name(path);
    let stem = strip_suffix_ignore_case(name, ".gguf")?;
    let (stem, split) = match split_suffix(stem) {
        Some((base, index, count)) => (base, Some((index, count))),
        None => (stem, None),
    };
    let mmproj = name.to_ascii_lowercase().contains("mmproj");
    let quant = quant_in_stem(stem).or_else(|| {
        // unsloth puts split sets in a folder named after the quant: `BF16/Model-00001-of-2.gguf`.
        let dir = path.rsplit('/').nth(1)?;
        quant_in_stem(dir)
    });
    Some(GgufName {
        quant,
        split,
        mmproj,
    })
}

/// The quantization token of a file stem, upper-case: the last token that looks like one.
fn quant_in_stem(stem: &str) -> Option<String> {
    let tokens: Vec<&str> = stem.split(['-', '.']).collect();
    for (i, token) in tokens.iter().enumerate().rev() {
        let upper = token.to_ascii_uppercase();
        // With the text before the quantization in its token (`""` for the whole token).
        let found = if is_quant_token(&upper) {
            Some((upper.clone(), ""))
        } else {
            // `model_q4_k_m`: the longest suffix after an `_` that is a quantization.
            upper
                .match_indices('_')
                .find(|&(at, _)| is_quant_token(&upper[at + 1..]))
                .map(|(at, _)| (upper[at + 1..].to_string(), &upper[..at]))
        };
        if let Some((quant, before)) = found {
            // `UD` must come right before the quantization: `X-UD-Q4_K_XL`, `X_UD_Q4_K_XL`.
            let unsloth_dynamic = if before.is_empty() {
                i > 0 && tokens[i - 1].eq_ignore_ascii_case("UD")
            } else {
                before == "UD" || before.ends_with("_UD")
            };
            return Some(if unsloth_dynamic {
                format!("UD-{quant}")
            } else {
                quant
            });
        }
    }
    None
}

/// Whether an upper-case token names a GGUF quantization (`Q4_K_M`, `IQ2_XXS`, `Q4_0_4_4`,
/// `TQ1_0`, `F16`, `BF16`, `MXFP4`, …).
fn is_quant_token(token: &str) -> bool {
    const FLOATS: [&str; 9] = [
        "F16",
        "F32",
        "F64",
        "BF16",
        "FP16",
        "FP32",
        "FP8",
        "MXFP4",
        "MXFP4_MOE",
    ];
    if FLOATS.contains(&token) {
        return true;
    }
    let rest = token
        .strip_prefix("IQ")
        .or_else(|| token.strip_prefix("TQ"))
        .or_else(|| token.strip_prefix('Q'));
    let Some(rest) = rest else { return false };
    let mut parts = rest.split('_');
    let bits = parts.next().unwrap_or_default();
    if bits.len() != 1 || !matches!(bits.as_bytes()[0], b'1'..=b'8') {
        return false;
    }
    parts.all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s[cut..].eq_ignore_ascii_case(suffix)).then(|| &s[..cut])
}

/// `name-00001-of-00003` → (`name`, 1, 3), as llama.cpp's `gguf-split` writes them.
fn split_suffix(stem: &str) -> Option<(&str, u32, u32)> {
    let (head, count) = stem.rsplit_once("-of-")?;
    let (base, index) = head.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(index) || !digits(count) {
        return None;
    }
    let (index, count) = (index.parse().ok()?, count.parse().ok()?);
    (index >= 1 && index <= count).then_some((base, index, count))
}

/// One choosable unit: a single GGUF file or a whole split set.
#[derive(Debug, Clone)]
struct GgufSet<'a> {
    quant: Option<String>,
    mmproj: bool,
    /// Parts in order (one for a single file).
    parts: Vec<&'a RepoFile>,
    /// Parts a split set announces.
    count: u32,
}

impl GgufSet<'_> {
    fn first_path(&self) -> &str {
        &self.parts[0].path
    }

    fn size(&self) -> Option<u64> {
        self.parts.iter().map(|f| f.size).sum()
    }

    fn is_complete(&self) -> bool {
        self.parts.len() == self.count as usize
    }

    fn paths(&self) -> Vec<String> {
        self.parts.iter().map(|f| f.path.clone()).collect()
    }

    /// Shallow folders first, then by path: the stable tie-break between equal candidates.
    fn order_key(&self) -> (usize, &str) {
        (depth(self.first_path()), self.first_path())
    }
}

/// Groups the GGUF files of a listing into single files and split sets.
fn gguf_sets(files: &[RepoFile]) -> Vec<GgufSet<'_>> {
    let mut sets: BTreeMap<String, GgufSet<'_>> = BTreeMap::new();
    for file in files {
        let Some(name) = parse_gguf_name(&file.path) else {
            continue;
        };
        match name.split {
            Some((index, count)) => {
                let stem = strip_suffix_ignore_case(&file.path, ".gguf").unwrap_or(&file.path);
                let base = split_suffix(stem).map_or(stem, |(base, _, _)| base);
                let key = format!("{base}\u{0}{count}");
                let set = sets.entry(key).or_insert_with(|| GgufSet {
                    quant: name.quant.clone(),
                    mmproj: name.mmproj,
                    parts: Vec::new(),
                    count,
                });
                if !set
                    .parts
                    .iter()
                    .any(|p| parse_gguf_name(&p.path).and_then(|n| n.split) == Some((index, count)))
                {
                    set.parts.push(file);
                }
            }
            None => {
                sets.insert(
                    file.path.clone(),
                    GgufSet {
                        quant: name.quant,
                        mmproj: name.mmproj,
                        parts: vec![file],
                        count: 1,
                    },
                );
            }
        }
    }
    let mut sets: Vec<GgufSet<'_>> = sets.into_values().collect();
    for set in &mut sets {
        set.parts
            .sort_by_key(|p| parse_gguf_name(&p.path).and_then(|n| n.split).map(|s| s.0));
    }
    sets.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    sets
}

/// Every part of the split set that `path` belongs to, in order, when it is one part of a set
/// of several (`…-00002-of-00003.gguf`); `None` for any other file. Parts missing from the
/// listing are simply absent (the caller checks the count).
pub fn split_set_of(files: &[RepoFile], path: &str) -> Option<(Vec<String>, u32)> {
    let (_, count) = parse_gguf_name(path)?.split?;
    if count < 2 {
        return None;
    }
    let set = gguf_sets(files)
        .into_iter()
        .find(|s| s.count == count && s.parts.iter().any(|p| p.path == path))?;
    Some((set.paths(), count))
}

/// Whether the listing holds a GGUF model (a `.gguf` file that is not a projector).
pub fn is_gguf_repo(files: &[RepoFile]) -> bool {
    files
        .iter()
        .filter_map(|f| parse_gguf_name(&f.path))
        .any(|n| !n.mmproj)
}

/// The quantizations a listing offers, each with the size of its smallest file or set, ordered
/// by size (unknown sizes last), then by name.
pub fn available_quants(files: &[RepoFile]) -> Vec<(String, Option<u64>)> {
    let mut best: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for set in gguf_sets(files).iter().filter(|s| !s.mmproj) {
        let Some(quant) = &set.quant else { continue };
        let size = set.size();
        best.entry(quant.clone())
            .and_modify(|s| {
                if size_rank(size) < size_rank(*s) {
                    *s = size;
                }
            })
            .or_insert(size);
    }
    let mut out: Vec<(String, Option<u64>)> = best.into_iter().collect();
    out.sort_by(|a, b| size_rank(a.1).cmp(&size_rank(b.1)).then(a.0.cmp(&b.0)));
    out
}

fn size_rank(size: Option<u64>) -> u64 {
    size.unwrap_or(u64::MAX)
}

/// The outcome of [`select_quant`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantChoice {
    /// The quantization taken (`None` for a model file whose name carries none).
    pub quant: Option<String>,
    /// Paths of the model file, or of every part of its split set, in order.
    pub model: Vec<String>,
    /// The vision projector taken along, when the repository has one.
    pub mmproj: Option<String>,
    /// Why these files, for people.
    pub notes: Vec<String>,
}

impl QuantChoice {
    /// Every path chosen: the model's, then the projector's.
    pub fn paths(&self) -> Vec<String> {
        let mut out = self.model.clone();
        out.extend(self.mmproj.clone());
        out
    }
}

/// Picks the GGUF file (or split set) of quantization `wanted` — or, when `None`, the default
/// preference — from `files`, plus its vision projector. `repo` (`ORG/REPO`) is for messages.
///
/// A quantization that is not there is [`Error::InvalidRequest`] listing those that are.
pub fn select_quant(
    repo: &str,
    files: &[RepoFile],
    wanted: Option<&str>,
) -> Result<QuantChoice, Error> {
    let sets = gguf_sets(files);
    let models: Vec<&GgufSet<'_>> = sets.iter().filter(|s| !s.mmproj).collect();
    if models.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "{repo} has no GGUF model files, so there is no quantization to choose{}; name a file (hf:{repo}/PATH) or drop the `:QUANT` to take a snapshot",
            wanted
                .map(|q| format!(" (asked for {q})"))
                .unwrap_or_default()
        )));
    }
    let labelled = |label: &str| -> Vec<&GgufSet<'_>> {
        models
            .iter()
            .copied()
            .filter(|s| {
                s.quant
                    .as_deref()
                    .is_some_and(|q| q.eq_ignore_ascii_case(label))
            })
            .collect()
    };
    let mut notes = Vec::new();
    let (chosen, candidates): (Option<String>, Vec<&GgufSet<'_>>) = match wanted {
        Some(wanted) => {
            let wanted = wanted.to_ascii_uppercase();
            let mut found = labelled(&wanted);
            if found.is_empty() && !wanted.starts_with("UD-") {
                found = labelled(&format!("UD-{wanted}"));
                if let Some(set) = found.first() {
                    notes.push(format!(
                        "no plain {wanted} in {repo}; took unsloth's dynamic {}",
                        set.quant.as_deref().unwrap_or_default()
                    ));
                }
            }
            if found.is_empty() {
                return Err(Error::InvalidRequest(missing_quant_message(
                    repo, &wanted, files,
                )));
            }
            (found[0].quant.clone(), found)
        }
        None => {
            let preferred = DEFAULT_PREFERENCE
                .iter()
                .map(|q| labelled(q))
                .chain(
                    DEFAULT_PREFERENCE
                        .iter()
                        .map(|q| labelled(&format!("UD-{q}"))),
                )
                .find(|found| !found.is_empty());
            match preferred {
                Some(found) => {
                    let quant = found[0].quant.clone();
                    notes.push(format!(
                        "picked {}: the default preference ({}); ask for another with hf:{repo}:QUANT",
                        quant.as_deref().unwrap_or_default(),
                        DEFAULT_PREFERENCE.join(", ")
                    ));
                    (quant, found)
                }
                None => {
                    let smallest = models
                        .iter()
                        .copied()
                        .min_by(|a, b| {
                            size_rank(a.size())
                                .cmp(&size_rank(b.size()))
                                .then(a.order_key().cmp(&b.order_key()))
                        })
                        .expect("models is not empty");
                    notes.push(format!(
                        "none of the preferred quantizations ({}) is in {repo}; picked the smallest model file, {}",
                        DEFAULT_PREFERENCE.join(", "),
                        smallest.first_path()
                    ));
                    (smallest.quant.clone(), vec![smallest])
                }
            }
        }
    };

    let set = candidates[0];
    if candidates.len() > 1 {
        let others: Vec<&str> = candidates[1..].iter().map(|s| s.first_path()).collect();
        notes.push(format!(
            "{} also matches {}; took {} (name a file with hf:{repo}/PATH to take another)",
            chosen.as_deref().unwrap_or("this choice"),
            others.join(", "),
            set.first_path()
        ));
    }
    if !set.is_complete() {
        let have: Vec<String> = set
            .parts
            .iter()
            .filter_map(|p| parse_gguf_name(&p.path).and_then(|n| n.split))
            .map(|(i, _)| i.to_string())
            .collect();
        return Err(Error::InvalidRequest(format!(
            "the split set {} in {repo} is incomplete: it has {} parts but only part(s) {} are in the repository",
            set.first_path(),
            set.count,
            have.join(", ")
        )));
    }

    let mmproj = pick_mmproj(&sets, chosen.as_deref());
    if let Some(path) = &mmproj {
        notes.push(format!(
            "also taking the vision projector {path}, as llama.cpp does; add --exclude 'mmproj*' to leave it out"
        ));
    }
    Ok(QuantChoice {
        quant: chosen,
        model: set.paths(),
        mmproj,
        notes,
    })
}

fn pick_mmproj(sets: &[GgufSet<'_>], model_quant: Option<&str>) -> Option<String> {
    let projectors: Vec<&GgufSet<'_>> = sets.iter().filter(|s| s.mmproj).collect();
    let with = |label: &str| {
        projectors
            .iter()
            .find(|s| {
                s.quant
                    .as_deref()
                    .is_some_and(|q| q.eq_ignore_ascii_case(label))
            })
            .copied()
    };
    let chosen = model_quant
        .and_then(with)
        .or_else(|| MMPROJ_PREFERENCE.iter().find_map(|q| with(q)))
        .or_else(|| {
            projectors.iter().copied().min_by(|a, b| {
                size_rank(a.size())
                    .cmp(&size_rank(b.size()))
                    .then(a.order_key().cmp(&b.order_key()))
            })
        })?;
    // Projectors are single files; a split one would be taken whole like a model.
    Some(chosen.first_path().to_string())
}

fn missing_quant_message(repo: &str, wanted: &str, files: &[RepoFile]) -> String {
    let quants = available_quants(files);
    if quants.is_empty() {
        return format!(
            "{repo} has no file in quantization {wanted}, and its GGUF file names carry no quantization; name a file with hf:{repo}/PATH"
        );
    }
    let listed: Vec<String> = quants
        .iter()
        .map(|(q, size)| match size {
            Some(size) => format!("{q} ({})", human_bytes(*size)),
            None => q.clone(),
        })
        .collect();
    let near: Vec<&str> = quants
        .iter()
        .map(|(q, _)| q.as_str())
        .filter(|q| {
            q.starts_with(wanted) || q.strip_prefix("UD-").is_some_and(|b| b.starts_with(wanted))
        })
        .collect();
    let hint = match near.as_slice() {
        [] => format!("e.g. hf:{repo}:{}", quants[0].0),
        [one] => format!("did you mean hf:{repo}:{one}?"),
        several => format!("did you mean one of {}?", several.join(", ")),
    };
    format!(
        "{repo} has no {wanted} quantization; it has: {}; {hint}",
        listed.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, u64)]) -> Vec<RepoFile> {
        list.iter()
            .map(|(p, s)| RepoFile::new(*p, Some(*s)))
            .collect()
    }

    fn quant(path: &str) -> Option<String> {
        parse_gguf_name(path).and_then(|n| n.quant)
    }

    #[test]
    fn reads_quant_tokens_the_way_repositories_name_them() {
        for (path, want) in [
            ("tinyllama-1.1b-chat-v1.0.Q4_K_M.gguf", Some("Q4_K_M")),
            ("Llama-3.2-1B-Instruct-Q4_K_M.gguf", Some("Q4_K_M")),
            (
                "qwen2.5-7b-instruct-q5_k_m-00001-of-00002.gguf",
                Some("Q5_K_M"),
            ),
            ("gemma-3-12b-it-q4_0.gguf", Some("Q4_0")),
            ("Meta-Llama-3.1-8B-Instruct-IQ2_XXS.gguf", Some("IQ2_XXS")),
            ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", Some("UD-Q4_K_XL")),
            // `UD` two tokens before the quantization is a name, not unsloth's marker.
            ("ud-0B_Q4_K_M.gguf", Some("Q4_K_M")),
            ("model_ud_q4_k_xl.gguf", Some("UD-Q4_K_XL")),
            ("model-f16.gguf", Some("F16")),
            ("Model.BF16.gguf", Some("BF16")),
            ("llama-2-7b.Q4_0_4_4.gguf", Some("Q4_0_4_4")),
            ("model_q8_0.gguf", Some("Q8_0")),
            ("Phi-3-mini-4k-instruct-q4.gguf", Some("Q4")),
            ("BF16/Qwen3-30B-A3B-00001-of-00002.gguf", Some("BF16")),
            ("bitnet-TQ1_0.gguf", Some("TQ1_0")),
            ("gpt-oss-20b-MXFP4.gguf", Some("MXFP4")),
            ("ggml-vocab-llama.gguf", None),
            ("Qwen2-7B.gguf", None),
            ("README.md", None),
        ] {
            assert_eq!(quant(path).as_deref(), want, "{path}");
        }
        assert!(parse_gguf_name("README.md").is_none());
        assert!(parse_gguf_name("MODEL.GGUF").is_some());
        let n = parse_gguf_name("mmproj-model-f16.gguf").unwrap();
        assert!(n.mmproj);
        assert_eq!(n.quant.as_deref(), Some("F16"));
        assert_eq!(
            parse_gguf_name("a-00003-of-00003.gguf").unwrap().split,
            Some((3, 3))
        );
        assert_eq!(
            parse_gguf_name("a-00004-of-00003.gguf").unwrap().split,
            None
        );
    }

    #[test]
    fn exact_token_match_case_insensitive() {
        let f = files(&[
            ("m.Q4_K_M.gguf", 400),
            ("m.Q4_K_S.gguf", 380),
            ("m.Q8_0.gguf", 800),
        ]);
        let c = select_quant("o/r", &f, Some("q4_k_s")).unwrap();
        assert_eq!(c.model, vec!["m.Q4_K_S.gguf"]);
        assert_eq!(c.quant.as_deref(), Some("Q4_K_S"));
        let e = select_quant("o/r", &f, Some("Q4_K")).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::InvalidRequest(_)));
        assert!(
            msg.contains("no Q4_K quantization") && msg.contains("Q4_K_M") && msg.contains("Q8_0"),
            "{msg}"
        );
        assert!(msg.contains("did you mean one of Q4_K_S, Q4_K_M?"), "{msg}");
    }

    #[test]
    fn default_preference_order_then_smallest() {
        let all = [
            ("m.Q8_0.gguf", 800),
            ("m.Q4_0.gguf", 390),
            ("m.Q5_K_M.gguf", 500),
            ("m.Q4_K_S.gguf", 380),
            ("m.Q4_K_M.gguf", 400),
            ("m.Q2_K.gguf", 200),
        ];
        let c = select_quant("o/r", &files(&all), None).unwrap();
        assert_eq!(c.model, vec!["m.Q4_K_M.gguf"]);
        assert!(c.notes[0].contains("default preference"), "{:?}", c.notes);
        let c = select_quant("o/r", &files(&all[..4]), None).unwrap();
        assert_eq!(c.model, vec!["m.Q4_K_S.gguf"]);
        let c = select_quant("o/r", &files(&all[..3]), None).unwrap();
        assert_eq!(c.model, vec!["m.Q5_K_M.gguf"]);
        let c = select_quant("o/r", &files(&all[..2]), None).unwrap();
        assert_eq!(c.model, vec!["m.Q4_0.gguf"]);
        let c = select_quant("o/r", &files(&all[..1]), None).unwrap();
        assert_eq!(c.model, vec!["m.Q8_0.gguf"]);
        let c = select_quant(
            "o/r",
            &files(&[
                ("m.Q6_K.gguf", 600),
                ("m.Q2_K.gguf", 200),
                ("m.F16.gguf", 2000),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(c.model, vec!["m.Q2_K.gguf"]);
        assert!(c.notes[0].contains("smallest"), "{:?}", c.notes);
        // A lone GGUF without a quant token is still a model.
        let c = select_quant("o/r", &files(&[("model.gguf", 10)]), None).unwrap();
        assert_eq!((c.model, c.quant), (vec!["model.gguf".to_string()], None));
    }

    #[test]
    fn split_sets_are_taken_whole_and_checked() {
        let f = files(&[
            ("Q8_0/m-Q8_0-00002-of-00003.gguf", 100),
            ("Q8_0/m-Q8_0-00001-of-00003.gguf", 100),
            ("Q8_0/m-Q8_0-00003-of-00003.gguf", 50),
            ("m-Q4_K_M-00001-of-00002.gguf", 100),
            ("m-Q4_K_M-00002-of-00002.gguf", 60),
        ]);
        let c = select_quant("o/r", &f, Some("Q8_0")).unwrap();
        assert_eq!(
            c.model,
            vec![
                "Q8_0/m-Q8_0-00001-of-00003.gguf",
                "Q8_0/m-Q8_0-00002-of-00003.gguf",
                "Q8_0/m-Q8_0-00003-of-00003.gguf"
            ]
        );
        let c = select_quant("o/r", &f, None).unwrap();
        assert_eq!(c.model.len(), 2);
        assert_eq!(
            available_quants(&f),
            vec![("Q4_K_M".into(), Some(160)), ("Q8_0".into(), Some(250))]
        );

        let broken = files(&[("m-Q4_K_M-00001-of-00002.gguf", 1)]);
        let e = select_quant("o/r", &broken, None).unwrap_err().to_string();
        assert!(e.contains("incomplete") && e.contains("2 parts"), "{e}");
    }

    #[test]
    fn a_named_part_brings_its_whole_set() {
        let f = files(&[
            ("m-Q8_0-00001-of-00002.gguf", 1),
            ("m-Q8_0-00002-of-00002.gguf", 1),
            ("m-Q4_K_M-00001-of-00002.gguf", 1),
            ("m-Q4_K_M-00002-of-00002.gguf", 1),
        ]);
        let (parts, count) = split_set_of(&f, "m-Q8_0-00002-of-00002.gguf").unwrap();
        assert_eq!(count, 2);
        assert_eq!(
            parts,
            vec!["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]
        );
        assert_eq!(split_set_of(&f, "m.gguf"), None);
        assert_eq!(split_set_of(&f, "README.md"), None);
    }

    #[test]
    fn mmproj_is_not_a_quant_and_comes_along() {
        let f = files(&[
            ("mmproj-model-f16.gguf", 600),
            ("mmproj-model-bf16.gguf", 600),
            ("mmproj-model-Q8_0.gguf", 300),
            ("gemma-3-4b-it-Q4_K_M.gguf", 2000),
            ("gemma-3-4b-it-Q8_0.gguf", 4000),
        ]);
        let c = select_quant("o/r", &f, None).unwrap();
        assert_eq!(c.model, vec!["gemma-3-4b-it-Q4_K_M.gguf"]);
        assert_eq!(c.mmproj.as_deref(), Some("mmproj-model-f16.gguf"));
        let c = select_quant("o/r", &f, Some("Q8_0")).unwrap();
        assert_eq!(c.mmproj.as_deref(), Some("mmproj-model-Q8_0.gguf"));
        assert_eq!(c.paths().len(), 2);
        // A projector alone is not a model, and its quant is not offered.
        assert!(!is_gguf_repo(&files(&[("mmproj-f16.gguf", 1)])));
        assert!(select_quant("o/r", &files(&[("mmproj-f16.gguf", 1)]), None).is_err());
        assert!(!available_quants(&f).iter().any(|(q, _)| q == "BF16"));
    }

    #[test]
    fn unsloth_dynamic_quants() {
        let f = files(&[("M-UD-Q4_K_XL.gguf", 10), ("M-Q4_K_M.gguf", 9)]);
        let c = select_quant("o/r", &f, Some("ud-q4_k_xl")).unwrap();
        assert_eq!(c.model, vec!["M-UD-Q4_K_XL.gguf"]);
        let c = select_quant("o/r", &f, Some("Q4_K_XL")).unwrap();
        assert_eq!(c.model, vec!["M-UD-Q4_K_XL.gguf"]);
        assert!(c.notes[0].contains("dynamic"), "{:?}", c.notes);
        let only_ud = files(&[("M-UD-Q4_K_M.gguf", 10), ("M-UD-IQ1_S.gguf", 2)]);
        let c = select_quant("o/r", &only_ud, None).unwrap();
        assert_eq!(c.model, vec!["M-UD-Q4_K_M.gguf"]);
    }

    #[test]
    fn duplicates_prefer_the_shallowest_and_say_so() {
        let f = files(&[("sub/m.Q4_K_M.gguf", 1), ("m.Q4_K_M.gguf", 1)]);
        let c = select_quant("o/r", &f, Some("Q4_K_M")).unwrap();
        assert_eq!(c.model, vec!["m.Q4_K_M.gguf"]);
        assert!(
            c.notes.iter().any(|n| n.contains("sub/m.Q4_K_M.gguf")),
            "{:?}",
            c.notes
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_name(name in "[a-zA-Z0-9_.\\-/]{0,40}") {
            let _ = parse_gguf_name(&name);
            let _ = parse_gguf_name(&format!("{name}.gguf"));
        }

        #[test]
        fn a_quant_written_into_a_name_is_read_back(
            prefix in "[a-z]{1,8}(-[0-9]{1,2}[bB])?",
            quant in proptest::sample::select(vec!["Q4_K_M", "Q5_K_S", "IQ3_XXS", "Q8_0", "F16", "BF16", "Q2_K", "IQ4_NL"]),
            sep in proptest::sample::select(vec!["-", ".", "_"]),
            lower in proptest::bool::ANY,
        ) {
            // A model named `ud` right before its quantization reads as unsloth's marker.
            proptest::prop_assume!(prefix != "ud");
            let q = if lower { quant.to_ascii_lowercase() } else { quant.to_string() };
            let path = format!("{prefix}{sep}{q}.gguf");
            proptest::prop_assert_eq!(quant_in_stem(path.trim_end_matches(".gguf")), Some(quant.to_string()));
        }
    }
}
