//! Shows a job's progress: bars on a terminal, periodic plain lines otherwise (CI and container
//! logs), JSON lines with `--json`. Speed and ETA are the tracker's (bytes moved by this run over
//! a moving window), never re-estimated here: a resumed prefix is not speed.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rbee_artifact::{
    EventKind, FileSnapshot, ProgressEvent, ProgressSnapshot, human_bytes, human_duration,
};
use tokio::sync::mpsc;

use crate::logging::wait;
use crate::terminal;

/// Version of the `--json` output documented in docs/cli.md; it changes only when a field
/// changes meaning or goes away.
pub(crate) const JSON_VERSION: u32 = 1;

/// A JSON document with the output's version (an object gains a `version` field).
pub(crate) fn versioned(mut value: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("version".into(), JSON_VERSION.into());
    }
    value
}

/// Set once a final event (`completed`, `failed`, `cancelled`) went out as a JSON line, so a
/// failure is never reported twice.
static FINAL_PRINTED: AtomicBool = AtomicBool::new(false);

/// Whether this process already printed a final JSON event.
pub(crate) fn final_printed() -> bool {
    FINAL_PRINTED.load(Ordering::Relaxed)
}

/// Plain mode prints a file's line at least this often while it moves…
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// …or when it advanced this many percent since its last line.
const PLAIN_STEP_PERCENT: f64 = 10.0;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One JSON object per event on stdout.
    Json,
    /// indicatif bars on stderr (a terminal).
    Bars,
    /// Periodic lines on stderr (not a terminal).
    Plain,
    /// Nothing.
    Quiet,
}

impl Mode {
    pub(crate) fn choose(json: bool, quiet: bool) -> Self {
        use std::io::IsTerminal;
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

/// What the renderer is fed.
#[derive(Debug)]
pub(crate) enum Update {
    /// A job event.
    Event(ProgressEvent),
    /// The job was paused (a daemon's job): no speed until it resumes. Carries the narration.
    Paused(ProgressEvent),
}

/// What the display saw, for the summary line.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Seen {
    /// Bytes downloaded by this run (files finished minus what they resumed from).
    pub(crate) fetched: u64,
}

/// Renders updates until a final event or the end of the channel. `label` names what is being
/// resolved until the job starts.
pub(crate) async fn render(mode: Mode, label: String, mut rx: mpsc::Receiver<Update>) -> Seen {
    let mut view = View::new(mode, &label);
    while let Some(update) = rx.recv().await {
        if view.show(update) {
            break;
        }
    }
    view.finish();
    view.seen
}

struct View {
    mode: Mode,
    color: bool,
    multi: MultiProgress,
    spinner: Option<ProgressBar>,
    total: Option<ProgressBar>,
    files: HashMap<String, ProgressBar>,
    file_count: usize,
    /// Per file: bytes it resumed from.
    resumed: HashMap<String, u64>,
    /// Plain mode: when and at what percent each file's last line was printed.
    printed: HashMap<String, (Instant, f64)>,
    seen: Seen,
}

impl View {
    fn new(mode: Mode, label: &str) -> Self {
        let target = if mode == Mode::Bars {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let mut view = Self {
            mode,
            color: terminal::stderr_color(),
            multi: MultiProgress::with_draw_target(target),
            spinner: None,
            total: None,
            files: HashMap::new(),
            file_count: 0,
            resumed: HashMap::new(),
            printed: HashMap::new(),
            seen: Seen::default(),
        };
        match mode {
            Mode::Bars => {
                let spinner = view.multi.add(ProgressBar::new_spinner());
                spinner.set_style(view.spinner_style());
                spinner.set_message(format!("resolving {label} …"));
                spinner.enable_steady_tick(Duration::from_millis(120));
                view.spinner = Some(spinner);
            }
            Mode::Plain => eprintln!("Resolving {label} …"),
            Mode::Json | Mode::Quiet => {}
        }
        view
    }

    /// Shows one update; returns whether it was the final one.
    fn show(&mut self, update: Update) -> bool {
        let event = match update {
            Update::Event(e) => e,
            Update::Paused(e) => {
                self.paused(&e);
                return false;
            }
        };
        self.count(&event);
        match self.mode {
            Mode::Quiet => {}
            Mode::Json => print_json(&event),
            Mode::Plain => self.plain(&event),
            Mode::Bars => self.bars(&event),
        }
        event.kind.is_final()
    }

    /// Keeps the numbers the summary needs.
    fn count(&mut self, event: &ProgressEvent) {
        match &event.kind {
            EventKind::FileStarted {
                path, resumed_from, ..
            } => {
                self.resumed.insert(path.clone(), *resumed_from);
            }
            EventKind::FileDone { path, bytes } => {
                if let Some(from) = self.resumed.remove(path) {
                    self.seen.fetched += bytes.saturating_sub(from);
                }
            }
            _ => {}
        }
    }

    fn paused(&mut self, event: &ProgressEvent) {
        match self.mode {
            Mode::Json => print_json(event),
            Mode::Bars => {
                for bar in self.total.iter().chain(self.files.values()) {
                    bar.set_prefix("paused");
                }
                let _ = self.multi.println(event.to_string());
            }
            Mode::Plain => eprintln!("{event}"),
            Mode::Quiet => {}
        }
    }

    fn plain(&mut self, event: &ProgressEvent) {
        match &event.kind {
            EventKind::Progress(s) | EventKind::Heartbeat(s) => self.plain_progress(s),
            EventKind::Retrying { .. } => eprintln!("{}", retry_line(event)),
            EventKind::FileDone { path, bytes } => {
                self.printed.remove(path);
                eprintln!("{path}: done ({})", human_bytes(*bytes));
            }
            // The summary (or the error) follows from the command itself.
            EventKind::Completed { .. }
            | EventKind::Failed { .. }
            | EventKind::Cancelled { .. } => {}
            _ => eprintln!("{event}"),
        }
    }

    /// One line per moving file, every [`PLAIN_EVERY`] or [`PLAIN_STEP_PERCENT`].
    fn plain_progress(&mut self, s: &ProgressSnapshot) {
        let now = Instant::now();
        let whole_job;
        let files: &[FileSnapshot] = if s.files.is_empty() {
            // A vendor that reports no files: the job is the one line.
            whole_job = [FileSnapshot {
                path: "total".into(),
                bytes: s.bytes,
                total: s.total,
                bytes_per_sec: s.bytes_per_sec,
                eta_secs: s.eta_secs,
            }];
            &whole_job
        } else {
            &s.files
        };
        for f in files {
            let percent = percent(f.bytes, f.total);
            let due = match self.printed.get(&f.path) {
                None => f.bytes > 0,
                Some((at, last)) => {
                    now.duration_since(*at) >= PLAIN_EVERY
                        || percent.unwrap_or(0.0) - last >= PLAIN_STEP_PERCENT
                }
            };
            if due {
                eprintln!(
                    "{}: {}",
                    f.path,
                    progress_text(f.bytes, f.total, f.bytes_per_sec, f.eta_secs)
                );
                self.printed
                    .insert(f.path.clone(), (now, percent.unwrap_or(0.0)));
            }
        }
    }

    fn bars(&mut self, event: &ProgressEvent) {
        match &event.kind {
            EventKind::Queued { .. } => {
                if let Some(s) = &self.spinner {
                    s.set_message(event.to_string());
                }
            }
            EventKind::Started {
                artifact,
                total_bytes,
                files,
            } => {
                self.file_count = *files;
                self.clear_spinner();
                let bar = self.total_bar();
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
                    bar.set_style(self.bar_style(false));
                    bar.set_message(path.clone());
                    bar.set_position(*resumed_from);
                    self.files.insert(path.clone(), bar);
                } else if let Some(total) = &self.total {
                    total.set_message(path.clone());
                }
                if *resumed_from > 0 {
                    let _ = self.multi.println(event.to_string());
                }
            }
            EventKind::Progress(s) | EventKind::Heartbeat(s) => {
                // Before `started` there is nothing to measure yet: the spinner stays.
                let Some(bar) = &self.total else {
                    return;
                };
                if s.total > 0 {
                    bar.set_length(s.total);
                }
                bar.set_position(s.bytes);
                bar.set_prefix(speed_text(s.bytes_per_sec, s.eta_secs));
                for f in &s.files {
                    if let Some(b) = self.files.get(&f.path) {
                        if f.total > 0 {
                            b.set_length(f.total);
                        }
                        b.set_position(f.bytes);
                        b.set_prefix(speed_text(f.bytes_per_sec, f.eta_secs));
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
                    b.finish_and_clear();
                }
                let _ = self
                    .multi
                    .println(format!("  ✓ {path} ({})", human_bytes(*bytes)));
            }
            EventKind::Retrying { .. } => {
                let _ = self.multi.println(retry_line(event));
            }
            EventKind::FileReused { .. } | EventKind::Message { .. } => {
                let _ = self.multi.println(event.to_string());
            }
            EventKind::Completed { .. }
            | EventKind::Failed { .. }
            | EventKind::Cancelled { .. } => self.finish(),
            _ => {}
        }
    }

    fn clear_spinner(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }

    /// Clears whatever is still drawn.
    fn finish(&mut self) {
        self.clear_spinner();
        for (_, b) in self.files.drain() {
            b.finish_and_clear();
        }
        if let Some(t) = self.total.take() {
            t.finish_and_clear();
        }
    }

    fn total_bar(&mut self) -> &ProgressBar {
        let style = self.bar_style(true);
        self.total.get_or_insert_with(|| {
            let bar = self.multi.insert(0, ProgressBar::new(0));
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        })
    }

    fn spinner_style(&self) -> ProgressStyle {
        let template = if self.color {
            "{spinner:.green} {wide_msg}"
        } else {
            "{spinner} {wide_msg}"
        };
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner())
    }

    /// A bar laid out to the terminal's width: the name takes what is left (cut with `…`), the
    /// bar itself goes on narrow terminals. The prefix carries the tracker's speed and ETA.
    fn bar_style(&self, total: bool) -> ProgressStyle {
        let width = terminal::stderr_width().unwrap_or(80);
        let lead = match (total, self.color) {
            (true, true) => "{spinner:.green} {wide_msg:.bold}",
            (true, false) => "{spinner} {wide_msg}",
            (false, _) => "  {wide_msg}",
        };
        let bar = match (width >= 100, self.color) {
            (false, _) => "",
            (true, true) => " [{bar:24.cyan/blue}]",
            (true, false) => " [{bar:24}]",
        };
        let template = if width >= 60 {
            format!("{lead}{bar} {{bytes:>9}}/{{total_bytes:<9}} {{percent:>3}}% {{prefix:<22}}")
        } else {
            format!("{lead} {{percent:>3}}% {{prefix}}")
        };
        ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }
}

/// Prints one event as a JSON line, with the output's version.
fn print_json(event: &ProgressEvent) {
    let Ok(mut value) = serde_json::to_value(event) else {
        return;
    };
    if let Some(obj) = value.as_object_mut() {
        obj.insert("version".into(), JSON_VERSION.into());
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{value}").is_err() {
        // The reader has gone (`| head`): nothing more to say.
        std::process::exit(0);
    }
    let _ = out.flush();
    if event.kind.is_final() {
        FINAL_PRINTED.store(true, Ordering::Relaxed);
    }
}

/// Prints a final `failed` or `cancelled` event for a download that ended before its job
/// could say so (a bad flag, an unreachable daemon), so `--json` always ends with one.
pub(crate) fn print_final_json(job_id: &str, code: &str, message: &str) {
    if final_printed() {
        return;
    }
    let kind = if code == "cancelled" {
        EventKind::Cancelled { bytes_on_disk: 0 }
    } else {
        EventKind::Failed {
            error: message.to_string(),
            code: code.to_string(),
        }
    };
    print_json(&ProgressEvent {
        job_id: job_id.into(),
        seq: 0,
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
        kind,
    });
}

fn percent(bytes: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| bytes.min(total) as f64 * 100.0 / total as f64)
}

/// `45.0 MiB of 100.0 MiB (45%) at 5.0 MiB/s, ETA 11s`.
fn progress_text(bytes: u64, total: u64, rate: f64, eta: Option<f64>) -> String {
    let mut text = match percent(bytes, total) {
        Some(p) => format!("{} of {} ({p:.0}%)", human_bytes(bytes), human_bytes(total)),
        None => human_bytes(bytes),
    };
    text.push_str(&format!(" at {}/s", human_bytes(rate as u64)));
    if let Some(eta) = eta {
        text.push_str(&format!(", ETA {}", human_duration(eta)));
    }
    text
}

/// `5.0 MiB/s ETA 11s` for a bar's prefix; blank until something moves.
fn speed_text(rate: f64, eta: Option<f64>) -> String {
    if rate <= 0.0 {
        return String::new();
    }
    match eta {
        Some(eta) => format!("{}/s ETA {}", human_bytes(rate as u64), human_duration(eta)),
        None => format!("{}/s", human_bytes(rate as u64)),
    }
}

/// `model.gguf: HTTP 503 …, retrying in 2 s (attempt 2)`.
fn retry_line(event: &ProgressEvent) -> String {
    match &event.kind {
        EventKind::Retrying {
            path,
            attempt,
            delay_ms,
            reason,
        } => format!(
            "{path}: {reason}, retrying in {} (attempt {attempt})",
            wait(*delay_ms)
        ),
        _ => event.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_carry_bytes_percent_speed_and_eta() {
        assert_eq!(
            progress_text(45 << 20, 100 << 20, 5.0 * 1048576.0, Some(11.0)),
            "45.0 MiB of 100.0 MiB (45%) at 5.0 MiB/s, ETA 11s"
        );
        assert_eq!(progress_text(10, 0, 0.0, None), "10 B at 0 B/s");
        assert_eq!(speed_text(0.0, None), "");
        assert_eq!(speed_text(2048.0, Some(65.0)), "2.0 KiB/s ETA 1m05s");
    }
}
