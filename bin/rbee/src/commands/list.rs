//! `rbee ls`: the catalog as a table, or one JSON document.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use anyhow::Result;
use rbee_artifact::human_bytes;
use rbee_catalog::{ArtifactStatus, CatalogEntry, Listing};
use serde::{Serialize, Serializer};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::render::JSON_VERSION;
use crate::setup;

pub(crate) fn list(global: &GlobalArgs) -> Result<()> {
    let (root, catalog) = setup::existing_catalog(global)?;
    let listing = match &catalog {
        Some(catalog) => catalog.list()?,
        None => Vec::new(),
    };
    let printed = print_listing(global, &root, &listing);
    // The process ends next: freeing thousands of records (and the catalog's cached index)
    // one allocation at a time would only delay the exit.
    std::mem::forget(listing);
    std::mem::forget(catalog);
    printed
}

/// Prints a catalog listing: a table whose columns fit the longest id (the reference is cut to
/// the terminal's width, never the id), or one JSON document with `--json`.
pub(crate) fn print_listing(global: &GlobalArgs, root: &Path, listing: &[Listing]) -> Result<()> {
    if global.json {
        return print_listing_json(root, listing);
    }
    if listing.is_empty() {
        eprintln!(
            "The catalog at {} is empty. Try: rbee pull hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
            root.display()
        );
        return Ok(());
    }
    // Borrowed where the listing holds the text already: a catalog can hold thousands of
    // entries, and a copy of each id is most of a table's allocations.
    let rows: Vec<[Cow<str>; 4]> = listing
        .iter()
        .map(|item| match item {
            Listing::Entry(e) => [
                status_text(&e.record.status),
                human_bytes(e.record.total_size()).into(),
                e.record.id.as_str().into(),
                e.record.reference.to_string().into(),
            ],
            Listing::Damaged { id, reason, .. } => [
                "damaged".into(),
                "-".into(),
                id.as_str().into(),
                format!("({reason})").into(),
            ],
        })
        .collect();
    let header = ["STATUS", "SIZE", "ID", "REFERENCE"].map(Cow::from);
    let widths: [usize; 3] = std::array::from_fn(|i| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    });
    let terminal = crate::terminal::stdout_width();
    // Only the last column gives way, so ids stay whole for copying.
    let fixed = widths[0] + widths[1] + widths[2] + 5;
    // One write for the whole table, not one per line.
    let mut table = String::with_capacity((rows.len() + 1) * (fixed + 48));
    for row in std::iter::once(&header).chain(&rows) {
        if !table.is_empty() {
            table.push('\n');
        }
        let start = table.len();
        let _ = write!(
            table,
            "{:<w0$} {:>w1$}  {:<w2$}  ",
            row[0],
            row[1],
            row[2],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        let width = table[start..].chars().count() + row[3].chars().count();
        match terminal {
            Some(cols) if width > cols && cols > fixed + 8 => {
                table.push_str(&crate::terminal::fit(&row[3], cols - fixed))
            }
            _ => table.push_str(&row[3]),
        }
    }
    out!("{table}");
    Ok(())
}

pub(super) fn status_text(status: &ArtifactStatus) -> Cow<'static, str> {
    match status {
        ArtifactStatus::Downloading { bytes, total }
        | ArtifactStatus::Incomplete { bytes, total }
            if *total > 0 =>
        {
            format!(
                "{} {:.0}%",
                status.name(),
                *bytes as f64 * 100.0 / *total as f64
            )
            .into()
        }
        other => other.name().into(),
    }
}

/// The listing as one JSON document, written as it is serialized: one entry's value at a time
/// rather than a tree of every entry (a catalog can hold thousands).
fn print_listing_json(root: &Path, listing: &[Listing]) -> Result<()> {
    struct Models<'a>(&'a [Listing]);
    impl Serialize for Models<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(self.0.iter().map(listing_json))
        }
    }
    // Keys in the order of every other document's (sorted, as `serde_json::Value` keeps them).
    #[derive(Serialize)]
    struct Document<'a> {
        models: Models<'a>,
        root: &'a Path,
        version: u32,
    }
    let doc = Document {
        models: Models(listing),
        root,
        version: JSON_VERSION,
    };
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut stdout, &doc)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush());
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => Ok(other?),
    }
}

fn listing_json(item: &Listing) -> serde_json::Value {
    match item {
        Listing::Entry(e) => entry_json(e),
        Listing::Damaged { id, dir, reason } => json!({
            "id": id,
            "status": {"state": "damaged", "error": reason},
            "dir": dir,
        }),
    }
}

pub(super) fn entry_json(e: &CatalogEntry) -> serde_json::Value {
    let mut value = serde_json::to_value(&e.record).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("dir".into(), json!(e.dir));
        obj.insert("path".into(), json!(e.primary_path()));
        obj.insert("paths".into(), json!(e.paths()));
        obj.insert("size".into(), json!(e.record.total_size()));
    }
    value
}
