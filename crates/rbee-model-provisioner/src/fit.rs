//! `hf:ORG/REPO:fit`: the largest GGUF quantization of a repository that fits the given GPUs
//! at the asked context, judged from the headers of the candidates alone. The decision is
//! [`pick`], a pure function over judged candidates; [`choose_fit`] does the reading around it.
//! The CLI and rbee-hive both choose here, each with its own GPUs.

use std::collections::BTreeMap;

use rbee_artifact::{
    ArtifactRef, Error, ResolveOptions, ResolvedArtifact, Result, VendorSource, human_bytes,
};
use rbee_gguf::{EstimateOptions, Gpu, RemoteOptions, inspect_plan};
use rbee_transfer::Transfer;
use rbee_vendor_huggingface::{HfRef, HfSelector, parse_gguf_name};
use tokio_util::sync::CancellationToken;

/// One quantization of a repository: a single file or a whole split set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The label, upper-case (`Q4_K_M`, `UD-Q4_K_XL`).
    pub quant: String,
    /// Bytes of all its files.
    pub bytes: u64,
    /// Its files.
    pub paths: Vec<String>,
}

/// What the headers said about a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// It fits; the verdict's sentence.
    Fits(String),
    /// It does not fit; the verdict's sentence.
    DoesNotFit(String),
    /// Its files alone outweigh the memory of every GPU together (its header was not read).
    LargerThanGpus,
    /// No estimate: why.
    Unknown(String),
}

/// Whether a reference asks for the quantization that fits (`:fit`).
pub fn asks_for_fit(reference: &ArtifactRef) -> bool {
    reference
        .get::<HfRef>()
        .is_some_and(|hf| hf.selector == HfSelector::Fit)
}

/// The model quantizations among `files` (path, size), largest first; vision projectors and
/// GGUFs without a quantization in their name are not candidates.
pub fn candidates(files: &[(String, u64)]) -> Vec<Candidate> {
    let mut by_quant: BTreeMap<String, Candidate> = BTreeMap::new();
    for (path, size) in files {
        let Some(name) = parse_gguf_name(path) else {
            continue;
        };
        let Some(quant) = name.quant.filter(|_| !name.mmproj) else {
            continue;
        };
        let c = by_quant.entry(quant.clone()).or_insert(Candidate {
            quant,
            bytes: 0,
            paths: Vec::new(),
        });
        c.bytes = c.bytes.saturating_add(*size);
        c.paths.push(path.clone());
    }
    let mut list: Vec<Candidate> = by_quant.into_values().collect();
    list.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.quant.cmp(&b.quant)));
    list
}

/// Whether a candidate's header is worth reading: weights take at least what the file holds
/// beyond its header, so a file larger than all GPU memory together cannot fit.
pub fn worth_reading(candidate: &Candidate, gpu_memory: u64) -> bool {
    candidate.bytes <= gpu_memory
}

/// The largest candidate that fits, or a message saying that none does and why each did not.
pub fn pick(judged: &[(Candidate, Judgement)]) -> std::result::Result<&Candidate, String> {
    judged
        .iter()
        .filter(|(_, j)| matches!(j, Judgement::Fits(_)))
        .map(|(c, _)| c)
        .max_by(|a, b| a.bytes.cmp(&b.bytes).then_with(|| b.quant.cmp(&a.quant)))
        .ok_or_else(|| {
            let why: Vec<String> = judged.iter().map(|(c, j)| describe(c, j)).collect();
            if why.is_empty() {
                "it has no GGUF quantizations to choose from".into()
            } else {
                format!("no quantization fits: {}", why.join("; "))
            }
        })
}

/// One line about a judged candidate.
pub fn describe(c: &Candidate, j: &Judgement) -> String {
    let size = human_bytes(c.bytes);
    match j {
        Judgement::Fits(line) | Judgement::DoesNotFit(line) => {
            format!("{} ({size}) {line}", c.quant)
        }
        Judgement::LargerThanGpus => {
            format!("{} ({size}) is larger than the GPU memory", c.quant)
        }
        Judgement::Unknown(why) => format!("{} ({size}): no estimate ({why})", c.quant),
    }
}

/// Replaces a `:fit` selector by the largest quantization whose estimate with `estimate`
/// fits `gpus`, reading the headers of the candidates largest first (none whose files
/// outweigh the GPUs); returns it with notes saying what was taken and what was passed over.
/// `vendor` lists the repository (`exclude` leaves files out); `transfer` reads the headers.
///
/// Errors: `InvalidRequest` when there are no GPUs or nothing fits (the message says why each
/// candidate did not); the vendor's errors; `Cancelled`.
///
/// Headers are read with [`RemoteOptions::default`]; [`choose_fit_with`] takes the caller's.
pub async fn choose_fit(
    vendor: &dyn VendorSource,
    transfer: &Transfer,
    reference: &ArtifactRef,
    exclude: &[String],
    estimate: &EstimateOptions,
    gpus: &[Gpu],
    cancel: &CancellationToken,
) -> Result<(ArtifactRef, Vec<String>)> {
    choose_fit_with(
        vendor,
        transfer,
        reference,
        exclude,
        estimate,
        gpus,
        &RemoteOptions::default(),
        cancel,
    )
    .await
}

/// [`choose_fit`], reading each candidate's header with `options` (a daemon passes its own
/// header cap).
#[allow(clippy::too_many_arguments)]
pub async fn choose_fit_with(
    vendor: &dyn VendorSource,
    transfer: &Transfer,
    reference: &ArtifactRef,
    exclude: &[String],
    estimate: &EstimateOptions,
    gpus: &[Gpu],
    options: &RemoteOptions,
    cancel: &CancellationToken,
) -> Result<(ArtifactRef, Vec<String>)> {
    let Some(hf) = reference.get::<HfRef>() else {
        return Ok((reference.clone(), Vec::new()));
    };
    if hf.selector != HfSelector::Fit {
        return Ok((reference.clone(), Vec::new()));
    }
    let gpu_memory: u64 = gpus.iter().map(Gpu::free).sum();
    let mut every_gguf = hf.clone();
    every_gguf.selector = HfSelector::Default;
    let listing = ArtifactRef::new(every_gguf);
    let resolve = ResolveOptions::with_globs(vec!["*.gguf".into()], exclude.to_vec());
    let resolved = tokio::select! {
        r = vendor.resolve(&listing, &resolve, cancel) => r?,
        () = cancel.cancelled() => return Err(Error::Cancelled),
    };
    let files: Vec<(String, u64)> = resolved
        .files
        .iter()
        .map(|f| (f.path.clone(), f.size.unwrap_or(0)))
        .collect();

    // Largest first: the first that fits is the answer, and smaller ones need no reading.
    let mut judged: Vec<(Candidate, Judgement)> = Vec::new();
    for candidate in candidates(&files) {
        let judgement = if worth_reading(&candidate, gpu_memory) {
            let only_these = ResolvedArtifact {
                files: resolved
                    .files
                    .iter()
                    .filter(|f| candidate.paths.contains(&f.path))
                    .cloned()
                    .collect(),
                ..resolved.clone()
            };
            let read = tokio::select! {
                r = inspect_plan(vendor, transfer, &only_these, options, cancel) => r,
                () = cancel.cancelled() => return Err(Error::Cancelled),
            };
            match read {
                Err(e) => Judgement::Unknown(e.to_string()),
                Ok(inspection) => match inspection.fit(estimate, gpus) {
                    Some(Ok(fit)) if fit.verdict.fits => Judgement::Fits(fit.verdict.line),
                    Some(Ok(fit)) => Judgement::DoesNotFit(fit.verdict.line),
                    None => Judgement::Unknown("the header lacks layer and head counts".into()),
                    Some(Err(e)) => Judgement::Unknown(e.to_string()),
                },
            }
        } else {
            Judgement::LargerThanGpus
        };
        let done = matches!(judgement, Judgement::Fits(_));
        judged.push((candidate, judgement));
        if done {
            break;
        }
    }
    let picked = pick(&judged)
        .map_err(|why| Error::InvalidRequest(format!("{reference}: {why}")))?
        .clone();
    let notes = judged
        .iter()
        .map(|(c, j)| {
            if *c == picked {
                format!("fit: took {}", describe(c, j))
            } else {
                format!("fit: passed over {}", describe(c, j))
            }
        })
        .collect();
    let mut chosen = hf.clone();
    chosen.selector = HfSelector::Quant(picked.quant);
    Ok((ArtifactRef::new(chosen), notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, u64)]) -> Vec<(String, u64)> {
        list.iter().map(|(p, s)| (p.to_string(), *s)).collect()
    }

    #[test]
    fn candidate_sizes_saturate() {
        let files = vec![
            ("m-Q4_K_M-00001-of-00002.gguf".to_string(), u64::MAX - 1),
            ("m-Q4_K_M-00002-of-00002.gguf".to_string(), 10),
        ];
        let list = candidates(&files);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].bytes, u64::MAX);
    }

    #[test]
    fn candidates_group_split_sets_and_leave_out_projectors() {
        let c = candidates(&files(&[
            ("m-Q4_K_M.gguf", 40),
            ("Q8_0/m-Q8_0-00001-of-00002.gguf", 50),
            ("Q8_0/m-Q8_0-00002-of-00002.gguf", 30),
            ("mmproj-m-F16.gguf", 500),
            ("m-UD-Q2_K_XL.gguf", 20),
            ("notes.gguf", 1000),
        ]));
        let got: Vec<(&str, u64, usize)> = c
            .iter()
            .map(|c| (c.quant.as_str(), c.bytes, c.paths.len()))
            .collect();
        assert_eq!(
            got,
            [("Q8_0", 80, 2), ("Q4_K_M", 40, 1), ("UD-Q2_K_XL", 20, 1)]
        );
    }

    fn cand(quant: &str, bytes: u64) -> Candidate {
        Candidate {
            quant: quant.into(),
            bytes,
            paths: vec![format!("m-{quant}.gguf")],
        }
    }

    #[test]
    fn pick_takes_the_largest_that_fits() {
        let judged = vec![
            (cand("Q8_0", 80), Judgement::LargerThanGpus),
            (
                cand("Q6_K", 60),
                Judgement::DoesNotFit("does not fit".into()),
            ),
            (cand("Q4_K_S", 38), Judgement::Fits("fits".into())),
            (cand("Q4_K_M", 40), Judgement::Fits("fits".into())),
            (cand("Q2_K", 20), Judgement::Unknown("unreadable".into())),
        ];
        assert_eq!(pick(&judged).unwrap().quant, "Q4_K_M");
    }

    #[test]
    fn pick_says_why_nothing_fits() {
        let judged = vec![
            (cand("Q8_0", 80), Judgement::LargerThanGpus),
            (
                cand("Q4_K_M", 40),
                Judgement::DoesNotFit("does not fit on GPU 0".into()),
            ),
            (
                cand("Q2_K", 20),
                Judgement::Unknown("truncated header".into()),
            ),
        ];
        let why = pick(&judged).unwrap_err();
        assert!(why.starts_with("no quantization fits: "), "{why}");
        for part in [
            "Q8_0 (80 B) is larger than the GPU memory",
            "Q4_K_M (40 B) does not fit on GPU 0",
            "Q2_K (20 B): no estimate (truncated header)",
        ] {
            assert!(why.contains(part), "{part:?} missing in {why}");
        }
        assert_eq!(
            pick(&[]).unwrap_err(),
            "it has no GGUF quantizations to choose from"
        );
    }

    #[test]
    fn only_files_within_gpu_memory_are_read() {
        assert!(worth_reading(&cand("Q4_K_M", 40), 40));
        assert!(!worth_reading(&cand("Q8_0", 41), 40));
    }
}
