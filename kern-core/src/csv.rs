//! CSV as kern's exports write it (RFC 4180), made safe to open in a spreadsheet.

/// One record: its fields (see [`field`]) joined by commas, ended by CRLF.
pub fn record<'a>(fields: impl IntoIterator<Item = &'a str>) -> String {
    let mut line = fields.into_iter().map(field).collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

/// One field, quoted when it holds a comma, a quote or a line break. A text a spreadsheet would
/// take for a formula (one starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is
/// prefixed with `'`: a principal or an argument could otherwise run as one when the export is
/// opened.
pub fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_they_must_be_and_formulas_are_defused() {
        assert_eq!(field("approved"), "approved");
        assert_eq!(field(r#"{"note":"a, b"}"#), r#""{""note"":""a, b""}""#);
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("-5"), "'-5");
        assert_eq!(record(["a", "b,c"]), "a,\"b,c\"\r\n");
    }
}
