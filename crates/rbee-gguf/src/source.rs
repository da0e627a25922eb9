//! Where header bytes come from: a local file, a byte slice, or a window of ranges fetched
//! from a remote file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::GgufError;

/// Random access to the bytes of one file of known size.
///
/// The reader never asks for bytes past [`size`](Source::size); implementations need not check.
pub trait Source {
    /// Total bytes in the file.
    fn size(&self) -> u64;

    /// Contiguous bytes readable at `offset` without fetching anything (a local file: all of
    /// them). The reader reads ahead at most this far.
    fn available(&self, offset: u64) -> u64 {
        self.size().saturating_sub(offset)
    }

    /// Fills `buf` with the bytes at `offset`.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError>;
}

/// Why a [`Source`] could not give the bytes asked for.
#[derive(Debug)]
pub enum SourceError {
    /// The bytes are not here yet (a remote window): fetch from `offset` and try again.
    Missing {
        /// The first byte missing.
        offset: u64,
    },
    /// Reading failed.
    Io(GgufError),
}

/// A local file.
#[derive(Debug)]
pub struct FileSource {
    file: File,
    path: PathBuf,
    size: u64,
}

impl FileSource {
    /// Opens `path` for reading.
    pub fn open(path: &Path) -> Result<FileSource, GgufError> {
        let io = |what: &str, e| GgufError::Io {
            context: format!("cannot {what} {}", path.display()),
            source: e,
        };
        let file = File::open(path).map_err(|e| io("open", e))?;
        let meta = file.metadata().map_err(|e| io("read the size of", e))?;
        if meta.is_dir() {
            return Err(GgufError::Io {
                context: format!("{} is a folder, not a model file", path.display()),
                source: std::io::ErrorKind::IsADirectory.into(),
            });
        }
        Ok(FileSource {
            file,
            path: path.to_path_buf(),
            size: meta.len(),
        })
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let io = |e| {
            SourceError::Io(GgufError::Io {
                context: format!("reading {} at byte {offset}", self.path.display()),
                source: e,
            })
        };
        self.file.seek(SeekFrom::Start(offset)).map_err(io)?;
        self.file.read_exact(buf).map_err(io)
    }
}

/// Bytes in memory (a whole small file, or a test fixture).
#[derive(Debug, Clone)]
pub struct SliceSource<'a>(pub &'a [u8]);

impl Source for SliceSource<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(SourceError::Io(GgufError::Io {
                context: format!("reading {} bytes at {offset}", buf.len()),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            })),
        }
    }
}

/// Parts of a remote file fetched so far: reads inside them succeed, reads outside report the
/// first missing byte so the caller can fetch more and parse again.
#[derive(Debug, Clone, Default)]
pub struct Window {
    size: u64,
    /// Sorted, disjoint `(start, bytes)`.
    chunks: Vec<(u64, Bytes)>,
}

impl Window {
    /// An empty window over a file of `size` bytes.
    pub fn new(size: u64) -> Window {
        Window {
            size,
            chunks: Vec::new(),
        }
    }

    /// Adds the bytes at `start`; parts already held are kept as they were.
    pub fn insert(&mut self, start: u64, bytes: Bytes) {
        let mut start = start;
        let mut bytes = bytes;
        while !bytes.is_empty() {
            // Skip what is already held at the front.
            if let Some(covered) = self.covered_until(start) {
                let skip = covered.saturating_sub(start).min(bytes.len() as u64) as usize;
                bytes = bytes.slice(skip..);
                start += skip as u64;
                continue;
            }
            let end = start + bytes.len() as u64;
            // Up to the next chunk held, if it starts inside the new bytes.
            let piece = match self.chunks.iter().find(|(s, _)| *s > start && *s < end) {
                Some(&(next, _)) => (next - start) as usize,
                None => bytes.len(),
            };
            let at = self.chunks.partition_point(|(s, _)| *s < start);
            self.chunks.insert(at, (start, bytes.slice(..piece)));
            bytes = bytes.slice(piece..);
            start += piece as u64;
        }
    }

    /// The end of the contiguous run of fetched bytes that holds `offset`, if any.
    fn covered_until(&self, offset: u64) -> Option<u64> {
        let mut end = None;
        let mut pos = offset;
        for (s, b) in &self.chunks {
            let e = s + b.len() as u64;
            if *s <= pos && e > pos {
                pos = e;
                end = Some(e);
            }
        }
        end
    }

    /// Bytes held.
    pub fn bytes_held(&self) -> u64 {
        self.chunks.iter().map(|(_, b)| b.len() as u64).sum()
    }
}

impl Source for Window {
    fn size(&self) -> u64 {
        self.size
    }

    fn available(&self, offset: u64) -> u64 {
        self.covered_until(offset)
            .map_or(0, |e| e.saturating_sub(offset))
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), SourceError> {
        let mut done = 0usize;
        while done < buf.len() {
            let pos = offset + done as u64;
            let Some((s, b)) = self
                .chunks
                .iter()
                .find(|(s, b)| *s <= pos && s + b.len() as u64 > pos)
            else {
                return Err(SourceError::Missing { offset: pos });
            };
            let from = (pos - s) as usize;
            let n = (b.len() - from).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&b[from..from + n]);
            done += n;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_reads_across_chunks_and_reports_gaps() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut w = Window::new(100);
        w.insert(0, Bytes::copy_from_slice(&data[..30]));
        w.insert(30, Bytes::copy_from_slice(&data[30..50]));
        w.insert(70, Bytes::copy_from_slice(&data[70..]));
        // Overlapping insert keeps one copy of each byte.
        w.insert(20, Bytes::copy_from_slice(&data[20..40]));
        assert_eq!(w.bytes_held(), 80);
        // A range spanning a held chunk fills both gaps around it.
        let mut v = Window::new(100);
        v.insert(30, Bytes::copy_from_slice(&data[30..50]));
        v.insert(0, Bytes::copy_from_slice(&data[..100]));
        assert_eq!(v.bytes_held(), 100);
        let mut all = [0u8; 100];
        v.read_at(0, &mut all).unwrap();
        assert_eq!(&all[..], &data[..]);
        assert_eq!(w.available(10), 40);
        assert_eq!(w.available(60), 0);
        let mut buf = [0u8; 40];
        w.read_at(5, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[5..45]);
        let mut buf = [0u8; 20];
        match w.read_at(40, &mut buf) {
            Err(SourceError::Missing { offset }) => assert_eq!(offset, 50),
            other => panic!("{other:?}"),
        }
        let mut buf = [0u8; 10];
        w.read_at(80, &mut buf).unwrap();
        assert_eq!(&buf[..], &data[80..90]);
    }
}
