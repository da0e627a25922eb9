//! `mutate-chunks IN OUT [FRACTION] [SEED]`: writes OUT as IN with about FRACTION (0.10) of its
//! Xet chunks changed, the second revision that `mutate_chunks` makes for the tests, so
//! benchmarks can put one in a fake-hub folder from the command line.

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (input, output) = match args.as_slice() {
        [i, o, ..] => (i, o),
        _ => bail!("usage: mutate-chunks IN OUT [FRACTION] [SEED]"),
    };
    let fraction: f64 = args
        .get(2)
        .map_or(Ok(0.10), |f| f.parse())
        .context("FRACTION")?;
    let seed: u64 = args.get(3).map_or(Ok(0), |s| s.parse()).context("SEED")?;
    let data = std::fs::read(input).with_context(|| format!("reading {input}"))?;
    let changed = rbee_fake_hub::mutate_chunks(&data, fraction, seed);
    std::fs::write(output, changed).with_context(|| format!("writing {output}"))?;
    Ok(())
}
