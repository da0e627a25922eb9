//! This machine's GPUs (from `nvidia-smi`, or as the user declares them) and whether an
//! estimate fits them.

use std::path::Path;
use std::time::Duration;

use rbee_artifact::human_bytes;
use serde::Serialize;

use crate::estimate::Estimate;

/// One GPU and its memory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    /// Index, as `nvidia-smi` and `CUDA_VISIBLE_DEVICES` count.
    pub index: usize,
    /// Model name.
    pub name: String,
    /// Memory in bytes.
    pub total: u64,
    /// Memory in use by other processes, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
}

impl Gpu {
    /// A GPU the user declares (`--vram 24GiB`) where none can be detected.
    pub fn declared(total: u64) -> Gpu {
        Gpu {
            index: 0,
            name: "declared with --vram".to_string(),
            total,
            used: None,
        }
    }

    /// Memory not in use.
    pub fn free(&self) -> u64 {
        self.total.saturating_sub(self.used.unwrap_or(0))
    }
}

/// The arguments that make `nvidia-smi` list GPUs as `name, total, used` lines.
pub const NVIDIA_SMI_ARGS: [&str; 2] = [
    "--query-gpu=name,memory.total,memory.used",
    "--format=csv,noheader",
];

/// Parses `nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv,noheader`:
/// `NVIDIA GeForce RTX 4090, 24564 MiB, 1024 MiB` per GPU (`[N/A]` where a value is unknown).
pub fn parse_nvidia_smi(text: &str) -> Result<Vec<Gpu>, String> {
    let mut gpus = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // The name may hold commas; the two sizes come last.
        let mut parts = line.rsplitn(3, ',').map(str::trim);
        let (Some(used), Some(total), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("unexpected nvidia-smi line {line:?}"));
        };
        let total = parse_mib(total).ok_or_else(|| {
            format!("unexpected memory size {total:?} in nvidia-smi line {line:?}")
        })?;
        gpus.push(Gpu {
            index: gpus.len(),
            name: name.to_string(),
            total,
            used: parse_mib(used),
        });
    }
    Ok(gpus)
}

fn parse_mib(text: &str) -> Option<u64> {
    let n: u64 = text.trim().strip_suffix("MiB")?.trim().parse().ok()?;
    n.checked_mul(1 << 20)
}

/// What GPU detection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// The GPUs `nvidia-smi` listed.
    Gpus(Vec<Gpu>),
    /// None: why (no `nvidia-smi`, it failed, it listed nothing).
    NoGpu(String),
}

/// Asks `program` (normally `nvidia-smi`) for the GPUs, giving up after 10 seconds.
pub async fn detect_gpus(program: &Path) -> Detected {
    let run = tokio::process::Command::new(program)
        .args(NVIDIA_SMI_ARGS)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(10), run).await {
        Err(_) => {
            return Detected::NoGpu(format!("{} did not answer within 10 s", program.display()));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Detected::NoGpu(format!("{} not found", program.display()));
        }
        Ok(Err(e)) => return Detected::NoGpu(format!("{} did not run: {e}", program.display())),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("").trim();
        return Detected::NoGpu(format!("{} failed: {first}", program.display()));
    }
    match parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)) {
        Ok(gpus) if gpus.is_empty() => {
            Detected::NoGpu(format!("{} lists no GPU", program.display()))
        }
        Ok(gpus) => Detected::Gpus(gpus),
        Err(e) => Detected::NoGpu(e),
    }
}

/// Memory the OS could give a new process now (`MemAvailable`), on Linux.
pub fn available_ram() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Whether a model fits, in one line for people and in fields for programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether everything asked for fits in GPU memory.
    pub fits: bool,
    /// The GPU it fits on, if one alone suffices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<usize>,
    /// When it does not fit: the most repeating layers that do (`--ngl`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_layers_that_fit: Option<u64>,
    /// The sentence, e.g. `fits on GPU 0 (NVIDIA RTX 4090, 24.0 GiB): needs 6.1 GiB at ctx 8192`.
    pub line: String,
}

/// Judges `estimate` against `gpus`. `with_layers(n)` re-estimates with `n` repeating layers
/// offloaded, to find how many fit when not all do.
pub fn verdict(
    gpus: &[Gpu],
    estimate: &Estimate,
    with_layers: &dyn Fn(u64) -> Option<Estimate>,
) -> Verdict {
    let need = estimate.gpu.total();
    let ctx = estimate.context;
    let Some(best) = gpus
        .iter()
        .max_by_key(|g| (g.free(), std::cmp::Reverse(g.index)))
    else {
        let all = with_layers(0).unwrap_or_else(|| estimate.clone());
        return Verdict {
            fits: false,
            gpu: None,
            gpu_layers_that_fit: None,
            line: format!(
                "no GPU to check against (give --vram SIZE): it needs {} of VRAM at ctx {ctx}, or {} of RAM on the CPU alone",
                human_bytes(need),
                human_bytes(all.cpu.total())
            ),
        };
    };
    let describe = |g: &Gpu| match g.used {
        Some(_) => format!(
            "GPU {} ({}, {}, {} free)",
            g.index,
            g.name,
            human_bytes(g.total),
            human_bytes(g.free())
        ),
        None => format!("GPU {} ({}, {})", g.index, g.name, human_bytes(g.total)),
    };
    if let Some(g) = gpus.iter().find(|g| need <= g.free()) {
        return Verdict {
            fits: true,
            gpu: Some(g.index),
            gpu_layers_that_fit: None,
            line: format!(
                "fits on {}: needs {} at ctx {ctx}{}",
                describe(g),
                human_bytes(need),
                ram_part(estimate)
            ),
        };
    }
    let all_free: u64 = gpus.iter().map(Gpu::free).sum();
    if gpus.len() > 1 && need <= all_free {
        return Verdict {
            fits: true,
            gpu: None,
            gpu_layers_that_fit: None,
            line: format!(
                "fits across {} GPUs ({} free together; llama.cpp splits the layers): needs {} at ctx {ctx}",
                gpus.len(),
                human_bytes(all_free),
                human_bytes(need)
            ),
        };
    }
    // The most layers that fit the roomiest GPU (memory grows with each layer offloaded).
    let fits = |n: u64| with_layers(n).is_some_and(|e| e.gpu.total() <= best.free());
    let (mut lo, mut hi) = (0u64, estimate.layers);
    if !fits(0) {
        hi = 0;
    }
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let advice = match with_layers(lo) {
        Some(e) if lo > 0 => format!(
            "; --ngl {lo} offloads {lo} of {} layers ({} of VRAM, {} of RAM)",
            e.layers,
            human_bytes(e.gpu.total()),
            human_bytes(e.cpu.total())
        ),
        _ => "; not even one layer fits: run it on the CPU or use a smaller quantization".into(),
    };
    Verdict {
        fits: false,
        gpu: None,
        gpu_layers_that_fit: Some(lo),
        line: format!(
            "does not fit on {}: needs {} at ctx {ctx}{advice}",
            describe(best),
            human_bytes(need)
        ),
    }
}

fn ram_part(e: &Estimate) -> String {
    format!(" (and {} of RAM)", human_bytes(e.cpu.total()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvidia_smi() {
        let gpus = parse_nvidia_smi(
            "NVIDIA GeForce RTX 4090, 24564 MiB, 1024 MiB\nTesla T4, 15360 MiB, [N/A]\n\n",
        )
        .unwrap();
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA GeForce RTX 4090");
        assert_eq!(gpus[0].total, 24564 << 20);
        assert_eq!(gpus[0].free(), (24564 - 1024) << 20);
        assert_eq!(gpus[1].used, None);
        assert_eq!(gpus[1].index, 1);
        assert!(parse_nvidia_smi("garbage").is_err());
        assert!(parse_nvidia_smi("a, b, c").is_err());
    }
}
