//! Helpers shared by the end-to-end tests.

use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub(crate) fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A run's status and output, for assertion messages.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON lines of a `--json` run's stdout.
pub(crate) fn events(out: &Output) -> Vec<Value> {
    json_lines(&out.stdout)
}

/// One JSON object per line; lines that are not JSON are skipped.
pub(crate) fn json_lines(stdout: &[u8]) -> Vec<Value> {
    stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// The error of a failed `--json` run: (exit code, code, message). A download's is its one
/// final `failed` event; any other command's, its one document's `error`. Nothing is repeated on
/// stderr.
pub(crate) fn failure(out: &Output) -> (i32, String, String) {
    let code = out.status.code().unwrap();
    assert_ne!(code, 0, "{}", text(out));
    let lines = events(out);
    let finals: Vec<&Value> = lines
        .iter()
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some("completed" | "failed" | "cancelled")
            )
        })
        .collect();
    let (code_text, message) = match finals.as_slice() {
        [] => {
            assert_eq!(lines.len(), 1, "one JSON document: {}", text(out));
            let error = &lines[0]["error"];
            (error["code"].clone(), error["message"].clone())
        }
        [last] => {
            assert_eq!(last["event"], "failed", "{}", text(out));
            assert!(
                std::ptr::eq(*last, lines.last().unwrap()),
                "the final event is the last line"
            );
            (last["code"].clone(), last["error"].clone())
        }
        _ => panic!("more than one final event: {}", text(out)),
    };
    let message = message.as_str().unwrap().to_string();
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&message),
        "the message is not repeated on stderr: {}",
        text(out)
    );
    (code, code_text.as_str().unwrap().to_string(), message)
}

/// The `path`s of a catalog record's files.
pub(crate) fn file_paths(record: &Value) -> Vec<String> {
    record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect()
}

/// Sends SIGINT (what Ctrl-C sends).
pub(crate) fn interrupt(pid: u32) {
    signal(pid, "-INT");
}

/// Interrupts `child` and waits (at most 10 s) for it to exit; returns its exit code.
pub(crate) async fn interrupt_and_wait(child: &mut Child) -> Option<i32> {
    interrupt(child.id());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "rbee did not stop within 10 s of SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends `signal` (`-INT`, `-STOP`, …) to process `pid` with the system's `kill`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} failed");
}

/// Bytes queued on loopback TCP connections to or from `port`: sent by one end, not yet read
/// by the other. Read from `/proc/net/tcp`, whose queue column is `tx_queue:rx_queue` in hex.
pub(crate) fn unread_socket_bytes(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port_of = |address: &str| {
        address
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let mut unread = 0;
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(remote), Some(queues)) =
            (fields.get(1), fields.get(2), fields.get(4))
        else {
            continue;
        };
        let Some((tx, rx)) = queues.split_once(':') else {
            continue;
        };
        let queued = |hex: &str| u64::from_str_radix(hex, 16).unwrap_or(0);
        if port_of(local) == Some(port) {
            unread += queued(tx);
        } else if port_of(remote) == Some(port) {
            unread += queued(rx);
        }
    }
    unread
}
