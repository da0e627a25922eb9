//! What the terminal allows: colour (only on a terminal, honouring `NO_COLOR` and
//! `CLICOLOR_FORCE`) and its width.

use std::io::IsTerminal;

/// Whether to colour what goes to stderr: never with `NO_COLOR` set, always with
/// `CLICOLOR_FORCE` set (to anything but `0`), else only when stderr is a terminal.
pub(crate) fn stderr_color() -> bool {
    color_choice(
        |name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()),
        std::io::stderr().is_terminal(),
    )
}

fn color_choice(env: impl Fn(&str) -> Option<String>, is_terminal: bool) -> bool {
    // https://no-color.org: any non-empty value turns colour off.
    if env("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    if env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0") {
        return true;
    }
    is_terminal && env("TERM").is_none_or(|t| t != "dumb")
}

/// Columns of stderr when it is a terminal (where the bars are drawn).
pub(crate) fn stderr_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stderr()).map(|(w, _)| usize::from(w.0))
}

/// Columns of stdout when it is a terminal (tables); `None` when it is a pipe or a file, where
/// nothing is cut.
pub(crate) fn stdout_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0))
}

/// `text` cut to `width` characters, ending in `…` when cut.
pub(crate) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_follows_no_color_then_clicolor_force_then_the_terminal() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(color_choice(env(&[]), true));
        assert!(!color_choice(env(&[]), false));
        assert!(!color_choice(env(&[("NO_COLOR", "1")]), true));
        assert!(!color_choice(
            env(&[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")]),
            true
        ));
        assert!(color_choice(env(&[("NO_COLOR", "")]), true));
        assert!(color_choice(env(&[("CLICOLOR_FORCE", "1")]), false));
        assert!(!color_choice(env(&[("CLICOLOR_FORCE", "0")]), false));
        assert!(!color_choice(env(&[("TERM", "dumb")]), true));
    }

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 6), "abcdef");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("ééé", 2), "é…");
    }
}
