//! File bodies: a byte range of a finished file, or of a file still downloading — read from its
//! `.part` as far as the engine has written it, waiting for the rest.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use rbee_artifact::lock_unpoisoned;
use rbee_artifact::partial::part_path;
use rbee_transfer::Written;
use tokio::sync::{mpsc, watch};

use crate::jobs::Job;

/// Bytes read from disk per chunk sent.
const CHUNK: u64 = 1 << 20;
/// How often a waiting reader looks again when there is nothing to wait on (the download has
/// not opened its file yet): a safety net, not the pace of the stream.
const LOOK_AGAIN: Duration = Duration::from_millis(50);
/// How long a reader waits without one new byte before it gives up on the download.
const NOTHING_FOR: Duration = Duration::from_secs(300);

/// Read buffers that were sent, kept for the next reads. A fresh buffer of a chunk's size is
/// fresh pages from the kernel (mapped, faulted in and zeroed page by page, unmapped once sent),
/// which cost the hive more CPU per byte than the read and the send together.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
/// Buffers kept at most (each [`CHUNK`] bytes): about what a few streams have in flight.
const MAX_SPARE: usize = 16;

/// The bytes read into a buffer of the pool; the buffer goes back to it once they are sent.
struct Chunk {
    buf: Vec<u8>,
    filled: usize,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.filled]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let mut spare = lock_unpoisoned(&SPARE);
        if spare.len() < MAX_SPARE {
            spare.push(std::mem::take(&mut self.buf));
        }
    }
}

/// Reads up to `len` bytes (at most [`CHUNK`]) at `offset`, short only at the end of the file.
async fn read_at(file: Arc<File>, offset: u64, len: u64) -> std::io::Result<Bytes> {
    tokio::task::spawn_blocking(move || {
        let buf = lock_unpoisoned(&SPARE)
            .pop()
            .unwrap_or_else(|| vec![0; CHUNK as usize]);
        let mut chunk = Chunk { buf, filled: 0 };
        let len = (len as usize).min(chunk.buf.len());
        while chunk.filled < len {
            match file.read_at(
                &mut chunk.buf[chunk.filled..len],
                offset + chunk.filled as u64,
            )? {
                0 => break,
                n => chunk.filled += n,
            }
        }
        Ok(Bytes::from_owner(chunk))
    })
    .await
    .map_err(|e| {
        std::io::Error::other(rbee_artifact::Error::task_failed(
            "reading a file to serve",
            e,
        ))
    })?
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

/// Streams of which a client may hold bytes that were not the file's: a stream cut after its
/// data failed the check, or changed under it. A resumed download of such a file would keep
/// the wrong head and append the right tail, so ranges that do not start at 0 are refused
/// until some client fetches it from the start (for the life of the process).
static TAINTED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// Whether a client may have received wrong bytes of the file named `key`.
pub(super) fn tainted(key: &str) -> bool {
    lock_unpoisoned(&TAINTED).contains(key)
}

/// A client fetches `key` from its first byte: nothing wrong of it survives in its copy.
pub(super) fn untaint(key: &str) {
    lock_unpoisoned(&TAINTED).remove(key);
}

/// The error that cuts a stream whose sent bytes may not be the file's.
#[derive(Debug)]
struct WrongBytes;

impl std::fmt::Display for WrongBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the upstream file failed its check or changed while it was being served: the bytes sent so far may be wrong; delete the partial download and retry",
        )
    }
}

impl std::error::Error for WrongBytes {}

fn wrong_bytes() -> std::io::Error {
    std::io::Error::other(WrongBytes)
}

/// The body of `[from, to)` of the file the download `job` is writing to `dest` (`total` bytes
/// long). Bytes go out as the engine writes them; the file's last byte only once it is
/// complete and verified, so a client never completes a copy from a download that failed its
/// check. Bytes before it are not verified when sent: when the download fails, or its data
/// changes after some of it was sent, the body ends with an error (the client sees a cut
/// transfer), and when the sent bytes may have been wrong, `key` is remembered so that a
/// client resuming from them is told to start over (see [`tainted`]). A client that goes away
/// only stops its own reader; the download goes on for the others.
pub(super) fn growing(
    dest: PathBuf,
    job: Arc<Job>,
    key: String,
    total: u64,
    from: u64,
    to: u64,
) -> Body {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if let Err(e) = follow(&tx, &dest, &job, total, from, to).await {
            if e.get_ref().is_some_and(|inner| inner.is::<WrongBytes>()) {
                lock_unpoisoned(&TAINTED).insert(key);
            }
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

/// How sending from a `.part` ended.
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    All,
    ClientGone,
    /// The data was discarded: the chunk just read was not sent.
    Changed,
}

/// Sends `[*pos, to)` of the `.part` `file`, read under `generation`, chunk by chunk, moving
/// `pos` past what was sent. Each chunk goes out only when, after it was read, the board
/// still has that generation and the chunk is written: the engine may truncate and rewrite
/// the file while a chunk is read.
async fn send_part(
    tx: &Chunks,
    file: &Arc<File>,
    written: &watch::Receiver<Written>,
    generation: u64,
    pos: &mut u64,
    to: u64,
) -> std::io::Result<Sent> {
    while *pos < to {
        let Ok(permit) = tx.reserve().await else {
            return Ok(Sent::ClientGone);
        };
        let bytes = read_at(file.clone(), *pos, CHUNK.min(to - *pos)).await?;
        let end = *pos + bytes.len() as u64;
        {
            let now = written.borrow();
            if now.generation != generation {
                return Ok(Sent::Changed);
            }
            if bytes.is_empty() || now.run_end(*pos) < end {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the partial file is shorter than its record says",
                ));
            }
        }
        *pos = end;
        permit.send(Ok(bytes));
    }
    Ok(Sent::All)
}

/// Opens the `.part` of `dest`. When it is not there (renamed to its final name meanwhile, or
/// not created yet), waits for news of the download or a while before answering `None`, so
/// that the caller's next look is not a busy loop.
async fn open_part(
    dest: &Path,
    written: &mut watch::Receiver<Written>,
    tx: &Chunks,
) -> Option<Arc<File>> {
    match File::open(part_path(dest)) {
        Ok(f) => Some(Arc::new(f)),
        Err(_) => {
            tokio::select! {
                _ = written.changed() => {}
                () = tokio::time::sleep(LOOK_AGAIN) => {}
                () = tx.closed() => {}
            }
            None
        }
    }
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
    // The generation of the data sent from a `.part`, kept across fetches of the file: bytes
    // of two generations do not make one file.
    let mut sent: Option<u64> = None;
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
                if sent.is_some_and(|g| g != now.generation) {
                    return Err(wrong_bytes());
                }
                if part.as_ref().is_some_and(|(_, g)| *g != now.generation) {
                    part = None;
                }
                let end = now.run_end(pos).min(limit);
                // Whole chunks (or all there is before the held-back byte): the engine reports
                // every small write, and a read per report would cost more than the bytes.
                if end > pos && (end - pos >= CHUNK || end == limit) {
                    let file = match &part {
                        Some((file, _)) => file.clone(),
                        None => match open_part(dest, &mut written, tx).await {
                            Some(f) => {
                                part = Some((f.clone(), now.generation));
                                f
                            }
                            None if tx.is_closed() => return Ok(()),
                            None => break,
                        },
                    };
                    let before = pos;
                    let result =
                        send_part(tx, &file, &written, now.generation, &mut pos, end).await;
                    if pos > before {
                        sent = Some(now.generation);
                        last_progress = tokio::time::Instant::now();
                    }
                    // On `Changed`, the next look stops the stream if this generation sent
                    // anything, or reads the new one.
                    if result? == Sent::ClientGone {
                        return Ok(());
                    }
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

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn written(generation: u64, ranges: Vec<(u64, u64)>) -> Written {
        let mut w = Written::default();
        w.generation = generation;
        w.ranges = ranges;
        w
    }

    /// A buffer used again carries only what the new read filled: the short read at a file's
    /// end shows none of the earlier, longer chunk read into it.
    #[tokio::test(flavor = "current_thread")]
    async fn a_reused_buffer_shows_only_the_new_read() {
        let mut long = tempfile::NamedTempFile::new().unwrap();
        long.write_all(&vec![1u8; 1000]).unwrap();
        let mut short = tempfile::NamedTempFile::new().unwrap();
        short.write_all(b"abcdef").unwrap();
        let long = Arc::new(File::open(long.path()).unwrap());
        let short = Arc::new(File::open(short.path()).unwrap());
        for _ in 0..MAX_SPARE + 2 {
            let first = read_at(long.clone(), 0, 1000).await.unwrap();
            assert_eq!(first.len(), 1000);
            drop(first);
            let tail = read_at(short.clone(), 3, CHUNK).await.unwrap();
            assert_eq!(&tail[..], b"def");
        }
    }

    /// A `.part` that cannot be opened while its board is up is looked for again after a
    /// while, not at once.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_missing_part_is_looked_for_again_after_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("model.gguf");
        let (_board, mut watcher) = watch::channel(written(1, vec![(0, 10)]));
        let (tx, _rx) = mpsc::channel(1);
        let started = tokio::time::Instant::now();
        assert!(open_part(&dest, &mut watcher, &tx).await.is_none());
        assert!(
            started.elapsed() >= LOOK_AGAIN,
            "looked again at once: a busy loop"
        );
    }

    /// The data is discarded while a long range is being sent: what was read after that is
    /// not sent, though the range was written when the send began.
    #[tokio::test(flavor = "current_thread")]
    async fn a_part_discarded_mid_send_stops_the_send() {
        let len = 3 * CHUNK;
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(&vec![7u8; len as usize]).unwrap();
        let file = Arc::new(File::open(tmp.path()).unwrap());
        let (board, watcher) = watch::channel(written(5, vec![(0, len)]));
        let (tx, mut rx) = mpsc::channel(1);
        let sender = tokio::spawn(async move {
            let mut pos = 0;
            let sent = send_part(&tx, &file, &watcher, 5, &mut pos, len).await;
            (sent.unwrap(), pos)
        });
        let first = rx.recv().await.unwrap().unwrap();
        assert_eq!(first.len() as u64, CHUNK);
        // No await between the first chunk and the reset: the sender reads the next one after.
        board.send_modify(|w| *w = written(6, Vec::new()));
        tmp.as_file()
            .write_all_at(&vec![0u8; len as usize], 0)
            .unwrap();
        assert!(
            rx.recv().await.is_none(),
            "a chunk of the old data was sent"
        );
        assert_eq!(sender.await.unwrap(), (Sent::Changed, CHUNK));
    }
}
