//! Files fetched piece by piece from a [`PieceSource`], with the URL as the fallback.

use std::ops::Range;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rbee_transfer::{
    FetchRequest, PieceSink, PieceSource, Transfer, TransferConfig, TransferError,
};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::common::*;

const PIECE: usize = 100_000;

/// How the test source misbehaves.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trick {
    Honest,
    /// Piece 2 hangs for a minute without a byte.
    Hang,
    /// Piece 1 fails once with a transient error after half its bytes.
    DropOnce,
    /// Piece 3 ends early.
    Short,
    /// Piece 3 hands over a byte more than it holds.
    Long,
    /// Piece 0 hands over wrong bytes (the digest catches it).
    Corrupt,
}

/// Serves `data` in pieces of [`PIECE`] bytes, handing each over in small writes.
#[derive(Debug)]
struct Pieces {
    data: Vec<u8>,
    spans: Vec<Range<u64>>,
    trick: Trick,
    /// Calls per piece, and where the engine said it already had bytes up to.
    calls: Mutex<Vec<(usize, u64)>>,
    dropped: AtomicU32,
    /// Times the engine said the assembled file failed its digest.
    mismatches: AtomicU32,
}

impl Pieces {
    fn new(data: Vec<u8>, trick: Trick) -> Arc<Self> {
        let len = data.len() as u64;
        let spans = (0..len)
            .step_by(PIECE)
            .map(|s| s..(s + PIECE as u64).min(len))
            .collect();
        Arc::new(Self {
            data,
            spans,
            trick,
            calls: Mutex::new(Vec::new()),
            dropped: AtomicU32::new(0),
            mismatches: AtomicU32::new(0),
        })
    }

    fn fetched(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.calls.lock().unwrap().iter().map(|c| c.0).collect();
        v.sort();
        v
    }
}

#[async_trait]
impl PieceSource for Pieces {
    fn pieces(&self) -> &[Range<u64>] {
        &self.spans
    }

    async fn fetch_piece(
        &self,
        index: usize,
        sink: &mut PieceSink<'_>,
    ) -> Result<(), TransferError> {
        self.calls.lock().unwrap().push((index, sink.have_until()));
        let span = sink.span();
        assert_eq!(span, self.spans[index]);
        if self.trick == Trick::Hang && index == 2 {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let mut bytes = self.data[span.start as usize..span.end as usize].to_vec();
        if self.trick == Trick::Corrupt && index == 0 {
            bytes[7] ^= 0xff;
        }
        if self.trick == Trick::Short && index == 3 {
            bytes.truncate(bytes.len() - 10);
        }
        if self.trick == Trick::Long && index == 3 {
            bytes.push(0);
        }
        for (n, chunk) in bytes.chunks(7_000).enumerate() {
            sink.received(chunk.len() as u64).await?;
            if self.trick == Trick::DropOnce
                && index == 1
                && n == 7
                && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
            {
                return Err(TransferError::transient("the connection dropped"));
            }
            sink.write(chunk).await?;
        }
        Ok(())
    }

    async fn digest_mismatch(&self) {
        self.mismatches.fetch_add(1, Ordering::Relaxed);
    }
}

async fn serve(fs: &FileServer) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/m.bin"))
        .respond_with(fs.clone())
        .mount(&server)
        .await;
    server
}

fn request<S: PieceSource + 'static>(
    server: &MockServer,
    data: &[u8],
    source: &Arc<S>,
) -> FetchRequest {
    let mut r = FetchRequest::new("m.bin", format!("{}/m.bin", server.uri()).parse().unwrap());
    r.expected_size = Some(data.len() as u64);
    r.sha256 = Some(digest(data));
    r.pieces = Some(source.clone());
    r
}

fn quick_stall() -> Transfer {
    Transfer::new(TransferConfig {
        stall_timeout: Duration::from_millis(300),
        max_attempts: 2,
        ..config()
    })
    .unwrap()
}

#[tokio::test]
async fn pieces_fill_the_file_and_the_url_is_not_asked() {
    let data = body(10 * PIECE + 1234);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let source = Pieces::new(data.clone(), Trick::Honest);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = request(&server, &data, &source);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let done = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(done.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(
        source.fetched(),
        (0..11).collect::<Vec<_>>(),
        "each piece once"
    );
    assert_eq!(fs.with(|s| s.requests), 0, "the URL was not needed");
    assert_eq!(p.bytes(), data.len() as u64);
    assert_eq!(listing(dir.path()), vec!["m.bin"]);
}

#[tokio::test]
async fn a_stopped_transfer_fetches_only_the_pieces_it_had_not_finished() {
    let data = body(10 * PIECE);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    // One piece at a time, so what the first run finished is known: pieces 0 and 1.
    let one = Transfer::new(TransferConfig {
        connections: 1,
        ..config()
    })
    .unwrap();
    let hanging = Pieces::new(data.clone(), Trick::Hang);
    let req = request(&server, &data, &hanging);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let cancel = CancellationToken::new();
    let first = one.fetch(&req, &dest, &p, &cancel);
    let stopper = async {
        while hanging.fetched().len() < 3 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        cancel.cancel();
    };
    let (result, ()) = tokio::join!(first, stopper);
    assert!(result.unwrap_err().is_cancelled());
    assert!(!dest.exists());
    assert!(dir.path().join("m.bin.part.state").exists());

    let honest = Pieces::new(data.clone(), Trick::Honest);
    let req = request(&server, &data, &honest);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(
        honest.fetched(),
        (2..10).collect::<Vec<_>>(),
        "only unfinished pieces"
    );
    assert_eq!(fs.with(|s| s.requests), 0);
}

#[tokio::test]
async fn a_piece_that_drops_is_retried_past_the_bytes_it_wrote() {
    let data = body(4 * PIECE);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let source = Pieces::new(data.clone(), Trick::DropOnce);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = request(&server, &data, &source);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let calls: Vec<(usize, u64)> = source
        .calls
        .lock()
        .unwrap()
        .iter()
        .copied()
        .filter(|c| c.0 == 1)
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].1, PIECE as u64);
    assert_eq!(calls[1].1, PIECE as u64 + 7 * 7_000, "kept what arrived");
    assert_eq!(fs.with(|s| s.requests), 0);
}

/// Each way a source can fail ends on the URL, with the right file and nothing wrong left.
#[tokio::test]
async fn a_failing_source_falls_back_to_the_url() {
    for trick in [Trick::Hang, Trick::Short, Trick::Long, Trick::Corrupt] {
        let data = body(6 * PIECE);
        let fs = FileServer::new(data.clone());
        let server = serve(&fs).await;
        let source = Pieces::new(data.clone(), trick);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("m.bin");
        let req = request(&server, &data, &source);
        let t = tracker();
        let p = progress(&t, req.expected_size);
        let done = quick_stall()
            .fetch(&req, &dest, &p, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("{trick:?}: {e}"));
        assert_eq!(done.sha256, digest(&data), "{trick:?}");
        assert_eq!(std::fs::read(&dest).unwrap(), data, "{trick:?}");
        assert!(fs.with(|s| s.requests) > 0, "{trick:?}: the URL was used");
        assert_eq!(listing(dir.path()), vec!["m.bin"], "{trick:?}");
        assert_eq!(
            source.mismatches.load(Ordering::Relaxed),
            u32::from(trick == Trick::Corrupt),
            "{trick:?}: the source is told when, and only when, its file failed the digest"
        );
    }
}

#[tokio::test]
async fn without_a_digest_pieces_are_not_used() {
    let data = body(3 * PIECE);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let source = Pieces::new(data.clone(), Trick::Honest);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let mut req = request(&server, &data, &source);
    req.sha256 = None;
    let t = tracker();
    let p = progress(&t, req.expected_size);
    transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(source.fetched().is_empty());
}

/// Writes its one piece in steps and looks at the partial file between them.
#[derive(Debug)]
struct Settling {
    data: Vec<u8>,
    spans: Vec<Range<u64>>,
    part: std::path::PathBuf,
    /// What the partial file held of each step's bytes when the step was over.
    seen: Mutex<Vec<(&'static str, bool)>>,
}

impl Settling {
    fn on_disk(&self, what: &'static str, bytes: Range<usize>) {
        let held = std::fs::read(&self.part).unwrap_or_default();
        let there = held.get(bytes.clone()) == Some(&self.data[bytes]);
        self.seen.lock().unwrap().push((what, there));
    }
}

#[async_trait]
impl PieceSource for Settling {
    fn pieces(&self) -> &[Range<u64>] {
        &self.spans
    }

    async fn fetch_piece(
        &self,
        _index: usize,
        sink: &mut PieceSink<'_>,
    ) -> Result<(), TransferError> {
        const SMALL: usize = 300_000;
        for chunk in self.data[..SMALL].chunks(30_000) {
            sink.received(chunk.len() as u64).await?;
            sink.write(chunk).await?;
        }
        self.on_disk("written", 0..SMALL);
        sink.settle().await?;
        self.on_disk("settled", 0..SMALL);
        // Far more than a block without a settle: written out anyway, memory stays bounded.
        let rest = &self.data[SMALL..];
        for chunk in rest.chunks(30_000) {
            sink.received(chunk.len() as u64).await?;
            sink.write(chunk).await?;
        }
        self.on_disk("never settled", SMALL..SMALL + 500_000);
        Ok(())
    }
}

#[tokio::test]
async fn a_sink_writes_out_at_settle_so_a_source_can_let_go_of_its_network_bytes_first() {
    let data = body(3_000_000);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let source = Arc::new(Settling {
        data: data.clone(),
        spans: std::iter::once(0..data.len() as u64).collect(),
        part: dir.path().join("m.bin.part"),
        seen: Mutex::new(Vec::new()),
    });
    let req = request(&server, &data, &source);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(
        *source.seen.lock().unwrap(),
        vec![
            ("written", false),
            ("settled", true),
            ("never settled", true)
        ],
        "bytes wait for settle, but not without bound"
    );
    assert_eq!(fs.with(|s| s.requests), 0);
}
