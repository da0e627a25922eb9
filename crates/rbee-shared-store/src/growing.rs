//! The bytes of a blob to publish, in order: a finished file, or a file this process is still
//! downloading (read as far as the download engine has written it, so that publishing overlaps
//! the download instead of following it).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use rbee_artifact::partial::part_path;
use rbee_transfer::{Written, watch_written};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often a follower looks for a download that has not started (or just ended).
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// Bytes of a blob, in order.
#[async_trait]
pub(crate) trait BlobBytes: Send {
    /// Fills `buffer` (less only at the end of the blob); 0 at the end.
    async fn fill(&mut self, buffer: &mut [u8]) -> std::io::Result<usize>;
}

#[async_trait]
impl BlobBytes for tokio::fs::File {
    async fn fill(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buffer.len() {
            let n = self.read(&mut buffer[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }
}

/// The file this process downloads to `dest`, read while it grows. Its bytes are not verified
/// yet: the uploader hashes what it read and completes the object only when that is the
/// expected digest, so bytes of an abandoned or restarted download never become a blob.
pub(crate) struct GrowingFile {
    dest: PathBuf,
    size: u64,
    pos: u64,
    /// The open `.part` (or final file) and the generation of the data read from it.
    file: Option<tokio::fs::File>,
    generation: Option<u64>,
    written: Option<watch::Receiver<Written>>,
    /// The download's board has been seen: when it goes away the download has ended.
    followed: bool,
    cancel: CancellationToken,
    /// Cancelled once the download has returned, whatever it produced.
    download_ended: CancellationToken,
}

impl GrowingFile {
    pub(crate) fn new(
        dest: &Path,
        size: u64,
        cancel: CancellationToken,
        download_ended: CancellationToken,
    ) -> GrowingFile {
        GrowingFile {
            dest: dest.to_path_buf(),
            size,
            pos: 0,
            file: None,
            generation: None,
            written: None,
            followed: false,
            cancel,
            download_ended,
        }
    }

    /// Reads `[pos, pos + buffer.len())` of the open file.
    async fn read_at(&mut self, buffer: &mut [u8]) -> std::io::Result<()> {
        let file = self.file.as_mut().expect("opened before reading");
        file.seek(SeekFrom::Start(self.pos)).await?;
        file.read_exact(buffer).await?;
        self.pos += buffer.len() as u64;
        Ok(())
    }

    /// Waits for news of the download (or a short while), unless cancelled.
    async fn wait(&mut self) -> std::io::Result<()> {
        let changed = async {
            match &mut self.written {
                Some(rx) => {
                    if rx.changed().await.is_err() {
                        self.written = None;
                    }
                }
                // Woken early by the end of the download, which may not have produced the file.
                None => tokio::select! {
                    () = tokio::time::sleep(LOOK_AGAIN) => {}
                    () = self.download_ended.cancelled() => {}
                },
            }
        };
        tokio::select! {
            () = changed => Ok(()),
            () = self.cancel.cancelled() => Err(std::io::Error::other("the download stopped")),
        }
    }
}

fn started_over() -> std::io::Error {
    std::io::Error::other("the download started over; what was read of it is not the file")
}

#[async_trait]
impl BlobBytes for GrowingFile {
    async fn fill(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let want = buffer.len().min((self.size - self.pos) as usize);
        let mut filled = 0;
        while filled < want {
            if self.written.is_none()
                && let Some(rx) = watch_written(&self.dest)
            {
                if self.followed {
                    // A second fetch of the file in this process: other bytes, perhaps.
                    return Err(started_over());
                }
                self.written = Some(rx);
                self.followed = true;
            }
            let Some(rx) = &mut self.written else {
                if !self.followed {
                    // Not started, or done before it was seen (or fetched by other means than
                    // the engine): the file at `dest` at its size is read, and still hashed.
                    let done = tokio::fs::metadata(&self.dest)
                        .await
                        .is_ok_and(|m| m.is_file() && m.len() == self.size);
                    if !done {
                        if self.download_ended.is_cancelled() {
                            return Err(std::io::Error::other(
                                "the download ended without putting the file in place",
                            ));
                        }
                        self.wait().await?;
                        continue;
                    }
                    self.followed = true;
                }
                // The download ended. It renames the `.part` only once verified, so the file
                // read so far is complete when it is now at `dest`.
                let at_dest = tokio::fs::File::open(&self.dest).await?;
                if let Some(file) = &self.file {
                    let (a, b) = (file.metadata().await?, at_dest.metadata().await?);
                    use std::os::unix::fs::MetadataExt;
                    if (a.dev(), a.ino()) != (b.dev(), b.ino()) {
                        return Err(started_over());
                    }
                }
                if at_dest.metadata().await?.len() != self.size {
                    return Err(std::io::Error::other(
                        "the downloaded file has another size",
                    ));
                }
                self.file = Some(at_dest);
                self.generation = None;
                let n = want - filled;
                self.read_at(&mut buffer[filled..filled + n]).await?;
                filled += n;
                continue;
            };
            let now = rx.borrow_and_update().clone();
            if self.generation.is_some_and(|g| g != now.generation) {
                return Err(started_over());
            }
            let end = now.run_end(self.pos).min(self.pos + (want - filled) as u64);
            if end == self.pos {
                self.wait().await?;
                continue;
            }
            if self.file.is_none() {
                match tokio::fs::File::open(part_path(&self.dest)).await {
                    Ok(f) => self.file = Some(f),
                    // Renamed meanwhile: the board closes next.
                    Err(_) => {
                        self.wait().await?;
                        continue;
                    }
                }
            }
            self.generation = Some(now.generation);
            let n = (end - self.pos) as usize;
            self.read_at(&mut buffer[filled..filled + n]).await?;
            filled += n;
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_download_that_ended_without_the_file_is_given_up() {
        let dir = tempfile::tempdir().unwrap();
        let ended = CancellationToken::new();
        let mut file = GrowingFile::new(
            &dir.path().join("never.bin"),
            1024,
            CancellationToken::new(),
            ended.clone(),
        );
        let mut buffer = vec![0; 1024];
        let reading = tokio::spawn(async move { file.fill(&mut buffer).await });
        tokio::time::sleep(LOOK_AGAIN * 2).await;
        ended.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(30), reading)
            .await
            .expect("the reader gives up once the download has ended")
            .unwrap();
        let e = outcome.expect_err("there are no bytes to read");
        assert!(e.to_string().contains("without putting the file"), "{e}");
    }

    #[tokio::test]
    async fn a_file_in_place_when_the_download_ended_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("done.bin");
        std::fs::write(&dest, [7u8; 64]).unwrap();
        let ended = CancellationToken::new();
        ended.cancel();
        let mut file = GrowingFile::new(&dest, 64, CancellationToken::new(), ended);
        let mut buffer = vec![0; 64];
        assert_eq!(file.fill(&mut buffer).await.unwrap(), 64);
        assert_eq!(buffer, vec![7u8; 64]);
    }
}
