//! Ctrl-C and SIGTERM: they cancel the run, and the exit status says which one it was.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio_util::sync::CancellationToken;

/// The signal that cancelled this run (SIGINT 2, SIGTERM 15), for the exit status `128 + N`.
/// SIGINT until told otherwise.
static SIGNAL: AtomicI32 = AtomicI32::new(2);

/// Records which signal asked this run to stop.
pub(crate) fn set_signal(signal: i32) {
    SIGNAL.store(signal, Ordering::Relaxed);
}

/// The exit status for a run stopped by the recorded signal (130 for Ctrl-C, 143 for SIGTERM).
pub(crate) fn signal_exit() -> u8 {
    (128 + SIGNAL.load(Ordering::Relaxed)) as u8
}

/// Cancels on Ctrl-C or SIGTERM (remembering which, for the exit status); a second signal
/// exits at once.
pub(crate) fn cancel_on_signals() -> CancellationToken {
    rbee_cli_support::stop_on_signals(set_signal, |signal| {
        set_signal(signal);
        eprintln!("interrupted again; exiting without waiting");
        i32::from(signal_exit())
    })
}
