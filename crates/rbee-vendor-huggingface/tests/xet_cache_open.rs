//! Opening the Xet chunk cache reads its record headers, not the chunks between them. Alone in
//! its own test binary: it measures the bytes this process reads (`/proc/self/io`), which any
//! test running beside it would add to.

use rbee_vendor_huggingface::ChunkCache;
use rbee_xet::XetHash;

/// Bytes this process has read through read(2) and friends so far.
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("an rchar line")
}

/// Prints what opening read (visible with `--nocapture`).
#[tokio::test(flavor = "current_thread")]
#[allow(clippy::print_stderr)]
async fn opening_the_cache_reads_only_the_record_headers() {
    let dir = tempfile::tempdir().unwrap();
    let x = XetHash::from_bytes([8; 32]);
    let records = 200u32;
    {
        let cache = ChunkCache::open(dir.path(), 1 << 30).unwrap();
        for i in 0..records {
            cache.put(&x, i, vec![i as u8; 64 << 10]).await;
        }
        cache.flush().await;
    }
    let on_disk: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(on_disk >= u64::from(records) * (64 << 10));
    let before = bytes_read();
    let cache = ChunkCache::open(dir.path(), 1 << 30).unwrap();
    let read = bytes_read() - before;
    eprintln!("opening a {on_disk}-byte cache of {records} records read {read} bytes");
    assert!(
        read * 10 < on_disk,
        "opening read {read} bytes of a {on_disk}-byte cache"
    );
    assert!(
        (0..records).all(|i| cache
            .read(&x, i)
            .is_some_and(|d| d == vec![i as u8; 64 << 10])),
        "every record indexed"
    );
}
