//! Shows a job's progress events: progress bars on a terminal, plain lines otherwise, JSON lines
//! with `--json`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbee_artifact_catalog::{EventKind, ProgressEvent, human_bytes};
use tokio::sync::broadcast;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One JSON object per event on stdout.
    Json,
    /// indicatif bars on stderr (a terminal).
    Bars,
    /// A line per notable event on stderr (not a terminal).
    Plain,
    /// Nothing.
    Quiet,
}

impl Mode {
    pub(crate) fn choose(json: bool, quiet: bool) -> Self {
        if json {
            Mode::Json
        } else if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

/// Renders events from `replay` then `rx` until a final event or the channel closes.
pub(crate) async fn render(
    mode: Mode,
    replay: Vec<ProgressEvent>,
    mut rx: broadcast::Receiver<ProgressEvent>,
) {
    let mut view = View::new(mode);
    for event in replay {
        if view.show(&event) {
            return;
        }
    }
    loop {
        match rx.recv().await {
            Ok(event) => {
                if view.show(&event) {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

struct View {
    mode: Mode,
    multi: MultiProgress,
    total: Option<ProgressBar>,
    files: HashMap<String, ProgressBar>,
    file_count: usize,
}

impl View {
    fn new(mode: Mode) -> Self {
        let target = if mode == Mode::Bars {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            mode,
            multi: MultiProgress::with_draw_target(target),
            total: None,
            files: HashMap::new(),
            file_count: 0,
        }
    }

    /// Shows one event; returns whether it was the final one.
    fn show(&mut self, event: &ProgressEvent) -> bool {
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                }
            }
            Mode::Plain => self.plain(event),
            Mode::Bars => self.bars(event),
        }
        event.kind.is_final()
    }

    fn plain(&mut self, event: &ProgressEvent) {
        let show = match &event.kind {
            EventKind::Progress(_) | EventKind::Heartbeat(_) => false,
            EventKind::FileStarted { .. } => true,
            EventKind::Completed { .. }
            | EventKind::Failed { .. }
            | EventKind::Cancelled { .. } => false,
            _ => true,
        };
        if show {
            eprintln!("{}", event.narration());
        }
    }

    fn bars(&mut self, event: &ProgressEvent) {
        match &event.kind {
            EventKind::Queued { .. } => self.total_bar(0).set_message(event.narration()),
            EventKind::Started {
                artifact,
                total_bytes,
                files,
            } => {
                self.file_count = *files;
                let bar = self.total_bar(*total_bytes);
                bar.set_length(*total_bytes);
                bar.set_message(artifact.clone());
            }
            EventKind::FileStarted {
                path,
                size,
                resumed_from,
            } => {
                // With one file, the total bar says it all.
                if self.file_count > 1 {
                    let bar = self.multi.add(ProgressBar::new(size.unwrap_or(0)));
                    bar.set_style(file_style());
                    bar.set_message(path.clone());
                    bar.set_position(*resumed_from);
                    bar.reset_eta();
                    self.files.insert(path.clone(), bar);
                } else if let Some(total) = &self.total {
                    total.set_message(path.clone());
                }
                if *resumed_from > 0 {
                    let _ = self.multi.println(event.narration());
                }
            }
            EventKind::Progress(s) | EventKind::Heartbeat(s) => {
                let bar = self.total_bar(s.total);
                if s.total > 0 {
                    bar.set_length(s.total);
                }
                bar.set_position(s.bytes);
                for f in &s.files {
                    if let Some(b) = self.files.get(&f.path) {
                        if f.total > 0 {
                            b.set_length(f.total);
                        }
                        b.set_position(f.bytes);
                    }
                }
            }
            EventKind::Verifying { path } => {
                if let Some(b) = self.files.get(path) {
                    b.set_message(format!("{path} (verifying)"));
                }
            }
            EventKind::FileDone { path, bytes } => {
                if let Some(b) = self.files.remove(path) {
                    b.set_position(*bytes);
                    b.finish_and_clear();
                }
                let _ = self
                    .multi
                    .println(format!("  ✓ {path} ({})", human_bytes(*bytes)));
            }
            EventKind::Retrying { .. }
            | EventKind::FileReused { .. }
            | EventKind::Message { .. } => {
                let _ = self.multi.println(event.narration());
            }
            EventKind::Completed { .. }
            | EventKind::Failed { .. }
            | EventKind::Cancelled { .. } => {
                for (_, b) in self.files.drain() {
                    b.finish_and_clear();
                }
                if let Some(t) = self.total.take() {
                    t.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    fn total_bar(&mut self, len: u64) -> &ProgressBar {
        self.total.get_or_insert_with(|| {
            let bar = self.multi.insert(0, ProgressBar::new(len));
            bar.set_style(total_style());
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        })
    }
}

fn total_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{spinner:.green} {msg:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {percent}% {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn file_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "  {msg} [{bar:30}] {bytes}/{total_bytes} {percent}% {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}
