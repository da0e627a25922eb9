//! File bodies: a byte range of a finished file, or of a file still downloading — read from its
//! `.part` as far as the engine has written it, waiting for the rest.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use rbee_artifact::partial::part_path;
use tokio::sync::mpsc;

use crate::jobs::Job;

/// Bytes read from disk per chunk sent.
const CHUNK: u64 = 1 << 20;
/// How often a waiting reader looks again when there is nothing to wait on (the download has
/// not opened its file yet): a safety net, not the pace of the stream.
const LOOK_AGAIN: Duration = Duration::from_millis(50);
/// How long a reader waits without one new byte before it gives up on the download.
const NOTHING_FOR: Duration = Duration::from_secs(300);

/// Reads up to `len` bytes at `offset` (short only at the end of the file).
async fn read_at(file: Arc<File>, offset: u64, len: u64) -> std::io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        let mut filled = 0;
        while filled < buf.len() {
            match file.read_at(&mut buf[filled..], offset + filled as u64)? {
                0 => break,
                n => filled += n,
            }
        }
        buf.truncate(filled);
        Ok(Bytes::from(buf))
    })
    .await
    .map_err(std::io::Error::other)?
}

type Chunks = mpsc::Sender<std::io::Result<Bytes>>;

/// Sends `[from, to)` of `file`; `false` when the client has gone.
async fn send_file(
    tx: &Chunks,
    file: &Arc<File>,
    mut from: u64,
    to: u64,
) -> Result<bool, std::io::Error> {
    while from < to {
        let bytes = read_at(file.clone(), from, CHUNK.min(to - from)).await?;
        if bytes.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than its record says",
            ));
        }
        from += bytes.len() as u64;
        if tx.send(Ok(bytes)).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The body of `[from, to)` of a complete file.
pub(super) fn finished(path: PathBuf, from: u64, to: u64) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let result = async {
            let file = Arc::new(File::open(&path)?);
            send_file(&tx, &file, from, to).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "serving a catalog file failed");
            let _ = tx.send(Err(e)).await;
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The body of `[from, to)` of the file the download `job` is writing to `dest` (`total` bytes
/// long). Bytes go out as the engine writes them; the file's last byte only once it is
/// complete and verified, so a client that received every byte holds a verified copy. When the
/// download fails, or starts the file over after some of its bytes were sent, the body ends
/// with an error (the client sees a cut transfer and can retry). A client that goes away only
/// stops its own reader; the download goes on for the others.
pub(super) fn growing(dest: PathBuf, job: Arc<Job>, total: u64, from: u64, to: u64) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = follow(&tx, &dest, &job, total, from, to).await {
            tracing::info!(path = %dest.display(), error = %e, "a mirror client's stream ended early");
            let _ = tx.send(Err(e)).await;
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Whether `dest` holds the complete file (the engine renames only verified bytes to it).
fn complete(dest: &Path, total: u64) -> bool {
    std::fs::symlink_metadata(dest).is_ok_and(|m| m.is_file() && m.len() == total)
}

async fn follow(
    tx: &Chunks,
    dest: &Path,
    job: &Job,
    total: u64,
    mut pos: u64,
    to: u64,
) -> std::io::Result<()> {
    // Held back until verified: the whole file's last byte.
    let limit = if to == total {
        total.saturating_sub(1)
    } else {
        to
    };
    let mut last_progress = tokio::time::Instant::now();
    loop {
        if pos >= to {
            return Ok(());
        }
        if complete(dest, total) {
            let file = Arc::new(File::open(dest)?);
            send_file(tx, &file, pos, to).await?;
            return Ok(());
        }
        if let Some(mut written) = rbee_transfer::watch_written(dest) {
            // The partial file, and the generation of the data read from it.
            let mut part: Option<(Arc<File>, u64)> = None;
            loop {
                let now = written.borrow_and_update().clone();
                if part.as_ref().is_some_and(|(_, g)| *g != now.generation) {
                    return Err(std::io::Error::other(
                        "the upstream file changed while it was being served; retry",
                    ));
                }
                let end = now.run_end(pos).min(limit);
                // Whole chunks (or all there is before the held-back byte): the engine reports
                // every small write, and a read per report would cost more than the bytes.
                if end > pos && (end - pos >= CHUNK || end == limit) {
                    let file = match &part {
                        Some((file, _)) => file.clone(),
                        None => match File::open(part_path(dest)) {
                            Ok(f) => {
                                let f = Arc::new(f);
                                part = Some((f.clone(), now.generation));
                                f
                            }
                            // Renamed to its final name meanwhile: read that.
                            Err(_) => break,
                        },
                    };
                    if !send_file(tx, &file, pos, end).await? {
                        return Ok(());
                    }
                    pos = end;
                    last_progress = tokio::time::Instant::now();
                    continue;
                }
                tokio::select! {
                    changed = written.changed() => if changed.is_err() { break },
                    () = tx.closed() => return Ok(()),
                    () = tokio::time::sleep(NOTHING_FOR) => {
                        return Err(std::io::Error::other("the upstream download made no progress for 5 minutes"));
                    }
                }
            }
            continue;
        }
        if job.is_final() && !complete(dest, total) {
            return Err(std::io::Error::other(format!(
                "the hive's download of this file did not finish (job {}); retry, or see GET /v1/jobs/{}",
                job.id, job.id
            )));
        }
        if last_progress.elapsed() > NOTHING_FOR {
            return Err(std::io::Error::other(
                "the upstream download did not start within 5 minutes",
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(LOOK_AGAIN) => {}
            () = tx.closed() => return Ok(()),
        }
    }
}
