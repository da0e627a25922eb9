//! Glue the `rbee` and `rbee-hive` binaries share, so each idea has one home: how a process
//! stops on SIGINT and SIGTERM, how `-v` and `RUST_LOG` choose what is logged, and how memory
//! freed by downloads goes back to the system. (Flag
//! values with a grammar of their own, such as rates, are parsed by the library that owns the
//! grammar: `rbee_transfer::parse_rate`.)
#![deny(missing_docs)]

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Allocations at least this large get their own mapping, returned to the system when freed.
pub const MMAP_THRESHOLD: usize = 128 << 10;

/// Fixes glibc's threshold for giving large allocations their own mapping. By default the
/// threshold rises to the size of the largest mapped block freed (up to 32 MiB): after the
/// first 1 MiB hashing buffer is freed, every 128 KiB write buffer of every connection comes
/// from the per-thread heaps, which keep what is freed. Measured with eight simultaneous
/// 1 GiB downloads in the daemon: peak RSS 406 MiB, 398 MiB still held when they had ended;
/// with the threshold fixed, 236 MiB and 28 MiB (`bench/hive-load.sh`). Call it first in `main`, before any thread
/// starts. Elsewhere than glibc, nothing to do.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets an allocator parameter; it is called before other threads
    // exist, and any value is valid for M_MMAP_THRESHOLD up to 32 MiB.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
    }
}

/// SIGINT's number; the exit status of a process it stopped is `128 + SIGINT`.
pub const SIGINT: i32 = 2;
/// SIGTERM's number.
pub const SIGTERM: i32 = 15;

/// Two-stage stopping: the first SIGINT or SIGTERM calls `first` with its number and cancels
/// the returned token, so the work can stop cleanly (partial files kept); a second one calls
/// `second` with its number and exits the process at once with the status `second` returns.
///
/// Both signals are listened for before this returns and until the second stage, so none
/// falls between the stages. Must be called inside a Tokio runtime.
pub fn stop_on_signals(
    first: impl FnOnce(i32) + Send + 'static,
    second: impl FnOnce(i32) -> i32 + Send + 'static,
) -> CancellationToken {
    let cancel = CancellationToken::new();
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the signals keep their default action: they end the process.
        return cancel;
    };
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut next = async || {
            tokio::select! {
                _ = int.recv() => SIGINT,
                _ = term.recv() => SIGTERM,
            }
        };
        first(next().await);
        token.cancel();
        let status = second(next().await);
        std::process::exit(status);
    });
    cancel
}

/// The log filter: `RUST_LOG` when set, else `default`.
pub fn log_filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_signal_is_named_and_cancels() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = stop_on_signals(
            move |signal| {
                let _ = tx.send(signal);
            },
            |_| 0,
        );
        assert!(!stop.is_cancelled());
        let sent = std::process::Command::new("kill")
            .args(["-INT", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        // A safety net only: the signal arrives at once.
        let signal = tokio::time::timeout(std::time::Duration::from_secs(30), rx)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(signal, SIGINT);
        stop.cancelled().await;
    }
}
