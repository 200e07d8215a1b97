//! How answers reach the user: aligned tables and `key: value` blocks for people, with colour
//! only on a terminal (and never under `NO_COLOR`), JSON for scripts (`--json`), and a
//! progress line on standard error when it is a terminal.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::exit::{Failure, Outcome};

/// The colours the output uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Green,
    Red,
    Yellow,
    Bold,
}

impl Colour {
    fn code(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Red => "31",
            Colour::Yellow => "33",
            Colour::Bold => "1",
        }
    }

    /// The colour of a row's or run's status.
    pub fn of_status(status: &str) -> Option<Colour> {
        match status {
            "approved" | "completed" => Some(Colour::Green),
            "rejected" | "error" | "expired" | "cancelled" => Some(Colour::Red),
            "pending" | "paused" | "running" => Some(Colour::Yellow),
            _ => None,
        }
    }
}

/// Where a command writes its answer, and in which form.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON instead of text.
    pub json: bool,
    colour: bool,
}

impl Output {
    /// Text or JSON as asked; colour when standard output is a terminal and `NO_COLOR` is not
    /// set to a value (set but empty, it asks for nothing, as no-color.org reads it).
    pub fn new(json: bool) -> Self {
        let no_colour = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
        let colour = !json && std::io::stdout().is_terminal() && !no_colour;
        Output { json, colour }
    }

    /// `text` in `colour`, when colour is on.
    pub fn paint(&self, text: &str, colour: Option<Colour>) -> String {
        match colour {
            Some(colour) if self.colour => format!("\x1b[{}m{text}\x1b[0m", colour.code()),
            _ => text.to_owned(),
        }
    }

    /// Prints `value` as one line of JSON.
    pub fn json_line(&self, value: &impl Serialize) -> Outcome {
        let text = serde_json::to_string(value).map_err(|err| Failure::error(format!("cannot encode JSON: {err}")))?;
        println_flushed(&text)
    }

    /// Tells the user, on standard error, of a trouble the command goes on through: a line of
    /// text, or with `--json` a JSON object (`{"warning": ..}`), as failures are told.
    pub fn warn(&self, message: &str) {
        let mut stderr = std::io::stderr().lock();
        let _ = if self.json {
            writeln!(stderr, "{}", serde_json::json!({ "warning": message }))
        } else {
            writeln!(stderr, "warning: {}", printable(message))
        };
    }

    /// Prints a line of text.
    pub fn line(&self, text: &str) -> Outcome {
        println_flushed(text)
    }

    /// Prints `table`, its columns aligned, its cells [`printable`].
    pub fn table(&self, table: &Table) -> Outcome {
        let rows: Vec<Vec<(Cow<'_, str>, Option<Colour>)>> = table
            .rows
            .iter()
            .map(|row| row.iter().map(|(text, colour)| (printable(text), *colour)).collect())
            .collect();
        let widths: Vec<usize> = (0..table.headers.len())
            .map(|column| {
                let cells = rows.iter().map(|row| row[column].0.chars().count());
                cells.chain([table.headers[column].len()]).max().unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> =
            table.headers.iter().zip(&widths).map(|(header, width)| format!("{header:width$}")).collect();
        out.push_str(&self.paint(header.join("  ").trim_end(), Some(Colour::Bold)));
        out.push('\n');
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|((text, colour), width)| {
                    let pad = width - text.chars().count();
                    format!("{}{}", self.paint(text, *colour), " ".repeat(pad))
                })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        print_flushed(&out)
    }

    /// Prints one page of a listing: its table, or `empty` when it has no rows, and how to
    /// ask for the next page: the listing's own arguments (`args`, `--flag value` in turn) and
    /// the next page's cursor, so that a copied hint keeps the filters.
    pub fn page(&self, table: &Table, empty: &str, args: &[String], next_cursor: Option<&str>) -> Outcome {
        if table.rows.is_empty() {
            self.line(empty)?;
        } else {
            self.table(table)?;
        }
        let Some(cursor) = next_cursor else { return Ok(()) };
        let words: Vec<String> = args.iter().map(|arg| shell_word(arg)).collect();
        let sep = if words.is_empty() { "" } else { " " };
        self.line(&format!("more: {}{sep}--cursor {}", words.join(" "), shell_word(cursor)))
    }

    /// Prints `fields` as aligned `key: value` lines, their values [`printable`].
    pub fn fields(&self, fields: &[(&str, String, Option<Colour>)]) -> Outcome {
        let width = fields.iter().map(|(key, ..)| key.len() + 1).max().unwrap_or(0);
        let mut out = String::new();
        for (key, value, colour) in fields {
            let key = format!("{key}:");
            out.push_str(&format!("{key:width$}  {}\n", self.paint(&printable(value), *colour)));
        }
        print_flushed(&out)
    }
}

/// `text` with its control characters escaped (`\u{1b}`, `\r`, `\n`), and the invisible ones
/// that reorder or hide text (`\u{202e}`, `\u{200b}`): values come from the runs' callers and
/// from models, and one that moved the cursor, cleared a line or turned a line around could show
/// an admin another call than the one they approve.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hides) {
        return Cow::Borrowed(text);
    }
    let escaped = text
        .chars()
        .map(|c| match c {
            _ if c.is_control() => c.escape_debug().to_string(),
            _ if hides(c) => c.escape_unicode().to_string(),
            _ => c.to_string(),
        })
        .collect();
    Cow::Owned(escaped)
}

/// Whether `c` changes what a terminal shows of the text around it rather than showing itself:
/// a control character, or an invisible mark of direction, joining or breaking (Unicode's
/// bidirectional controls, zero-width characters, line and paragraph separators, the soft
/// hyphen, the byte-order mark, and the tag characters text can be hidden in).
fn hides(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'
                | '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// `text` as one word of a shell command line: as it is when it holds only characters no shell
/// gives a meaning to, else in single quotes.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '+' | '=' | ','));
    if plain { text.to_owned() } else { format!("'{}'", printable(text).replace('\'', "'\\''")) }
}

/// The `--flag value` arguments of the filters a listing was given (`None` for one not given),
/// in order.
pub fn given(flags: &[(&str, Option<String>)]) -> Vec<String> {
    flags
        .iter()
        .filter_map(|(flag, value)| value.as_ref().map(|value| [format!("--{flag}"), value.clone()]))
        .flatten()
        .collect()
}

/// A time as the tables show it: to the second, in UTC, as RFC 3339 (it can be given back to
/// `--since` and `--until` as it is).
pub fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn print_flushed(text: &str) -> Outcome {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).map_err(|err| Failure::write(&err))
}

fn println_flushed(text: &str) -> Outcome {
    print_flushed(&format!("{text}\n"))
}

/// Rows of cells under headers; a cell may carry a colour.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<(String, Option<Colour>)>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Table { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row of as many cells as there are headers.
    pub fn row(&mut self, cells: Vec<(String, Option<Colour>)>) {
        debug_assert_eq!(cells.len(), self.headers.len());
        self.rows.push(cells);
    }
}

/// A cell without colour.
pub fn plain(text: impl Into<String>) -> (String, Option<Colour>) {
    (text.into(), None)
}

/// An optional value, `-` when absent.
pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// A progress line on standard error, redrawn in place, shown only when standard error is a
/// terminal so that logs and pipes stay clean. Dropped, it ends its line: a command that fails
/// midway, or whose reader went away, leaves its message and the prompt on lines of their own.
#[derive(Debug)]
pub struct Progress {
    shown: bool,
    /// Whether a line was drawn and not ended yet.
    drawn: bool,
}

impl Progress {
    pub fn new() -> Self {
        Progress { shown: std::io::stderr().is_terminal(), drawn: false }
    }

    /// Shows `done` of about `total`.
    pub fn update(&mut self, done: u64, total: u64, what: &str) {
        if !self.shown {
            return;
        }
        self.drawn = true;
        let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        let filled = (percent / 5) as usize;
        let bar = format!("{}{}", "#".repeat(filled), ".".repeat(20 - filled));
        // A progress line that cannot be shown is no failure.
        let _ = write!(std::io::stderr(), "\r[{bar}] {percent:>3}%  {done} {what}");
    }

    /// Ends the line.
    pub fn finish(mut self) {
        self.end_line();
    }

    fn end_line(&mut self) {
        if std::mem::take(&mut self.drawn) {
            let _ = writeln!(std::io::stderr());
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.end_line();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_drawn_is_ended_once() {
        let mut progress = Progress { shown: true, drawn: false };
        progress.end_line();
        assert!(!progress.drawn, "nothing drawn, nothing to end");
        progress.update(1, 2, "events read");
        assert!(progress.drawn, "dropped now, it would end its line");
        progress.end_line();
        assert!(!progress.drawn, "and only once");
    }

    #[test]
    fn colour_is_off_when_not_asked_for() {
        let output = Output { json: false, colour: false };
        assert_eq!(output.paint("approved", Some(Colour::Green)), "approved");
        let coloured = Output { json: false, colour: true };
        assert_eq!(coloured.paint("approved", Some(Colour::Green)), "\x1b[32mapproved\x1b[0m");
    }

    #[test]
    fn shell_words_are_quoted_where_a_shell_would_read_them() {
        assert_eq!(shell_word("1767225600000000.01a2-b"), "1767225600000000.01a2-b");
        assert_eq!(shell_word("2026-12-04T19:00:00+00:00"), "2026-12-04T19:00:00+00:00");
        assert_eq!(shell_word("ada lovelace"), "'ada lovelace'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(given(&[("status", Some("pending".into())), ("tool", None)]), ["--status", "pending"]);
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert!(matches!(printable("s-1 ✓ café"), Cow::Borrowed("s-1 ✓ café")));
        let forged = "s1\x1b[3A\x1b[2Kargs:  {\"amount\":5}\r\n\u{9b}\u{7f}";
        assert_eq!(printable(forged), "s1\\u{1b}[3A\\u{1b}[2Kargs:  {\"amount\":5}\\r\\n\\u{9b}\\u{7f}");
        // Text turned around or hidden: an IBAN read backwards, a name with a joiner inside.
        assert_eq!(printable("DE\u{202e}98\u{200b}x\u{feff}"), "DE\\u{202e}98\\u{200b}x\\u{feff}");
        assert_eq!(printable("ok\u{e0041}\u{2028}"), "ok\\u{e0041}\\u{2028}", "tag characters hide text");
        assert!(matches!(printable("مرحبا 👩\u{200d}💻"), Cow::Owned(_)), "a joiner is shown, not applied");
    }
}
