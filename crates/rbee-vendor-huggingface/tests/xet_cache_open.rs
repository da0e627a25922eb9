//! Opening the Xet chunk cache reads its record headers, not the chunks between them, and a run
//! of links in a few reads. Alone in its own test binary, as one test: it measures what this
//! process reads (`/proc/self/io`), which any test running beside it would add to.

use rbee_vendor_huggingface::{ChunkCache, LinkedChunk};
use rbee_xet::XetHash;

/// `field` of `/proc/self/io` (`rchar`: bytes read through read(2) and friends so far;
/// `syscr`: calls of them).
fn io(field: &str) -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(": "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the field")
}

fn bytes_read() -> u64 {
    io("rchar")
}

/// Prints what opening read (visible with `--nocapture`).
#[tokio::test(flavor = "current_thread")]
#[allow(clippy::print_stderr)]
async fn opening_the_cache_reads_only_record_headers_and_few_times() {
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
    drop(cache);

    // The chunks of a 4 GiB download, linked: a few hundred reads, not one or two per link.
    let files = tempfile::tempdir().unwrap();
    let model = files.path().join("model.gguf");
    std::fs::write(&model, vec![7u8; 64 << 10]).unwrap();
    let linked = XetHash::from_bytes([9; 32]);
    let links = 65_536u32;
    {
        let cache = ChunkCache::open(dir.path(), 1 << 30).unwrap();
        let chunks = (0..links).map(|index| LinkedChunk {
            xorb: linked,
            index,
            at: 0,
            len: 64 << 10,
        });
        cache.link(&model, chunks.collect()).await;
        cache.flush().await;
    }
    let before = io("syscr");
    let cache = ChunkCache::open(dir.path(), 1 << 30).unwrap();
    let calls = io("syscr") - before;
    eprintln!("opening a cache of {links} links and {records} chunks took {calls} reads");
    assert!(
        calls < 5_000,
        "{calls} reads to open a cache of {links} links"
    );
    assert_eq!(cache.read(&linked, links - 1).unwrap(), vec![7u8; 64 << 10]);
}
