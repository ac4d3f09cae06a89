//! Writing CSV cells (RFC 4180) that are also safe to open in a spreadsheet.
//!
//! Quoting: a cell with a comma, a double quote, CR or LF is wrapped in double quotes with
//! inner quotes doubled; records end in CRLF. Formula injection: a text cell that starts with
//! `=`, `+`, `-`, `@`, a tab or CR would be evaluated by Excel, LibreOffice or Sheets (a
//! customer can put `=HYPERLINK(…)` in a name or a transcript), so it gets a leading
//! apostrophe, which spreadsheets show as text. Numbers we write ourselves (durations,
//! scores, which may be negative) are not text and are left alone.

/// One cell's value.
pub enum Cell<'a> {
    /// Free text from users, PBXs or callers: quoted as needed and neutralised.
    Text(&'a str),
    /// A number we formatted ourselves.
    Number(String),
    Empty,
}

fn needs_neutralising(s: &str) -> bool {
    matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'))
}

fn push_quoted(out: &mut String, s: &str) {
    if s.contains([',', '"', '\r', '\n']) {
        out.push('"');
        for ch in s.chars() {
            if ch == '"' {
                out.push('"');
            }
            out.push(ch);
        }
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Appends one record (cells joined by commas, then CRLF).
pub fn push_record(out: &mut String, cells: &[Cell<'_>]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match cell {
            Cell::Text(s) if needs_neutralising(s) => push_quoted(out, &format!("'{s}")),
            Cell::Text(s) => push_quoted(out, s),
            Cell::Number(n) => out.push_str(n),
            Cell::Empty => {}
        }
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cells: &[Cell<'_>]) -> String {
        let mut s = String::new();
        push_record(&mut s, cells);
        s
    }

    #[test]
    fn quotes_and_neutralises() {
        assert_eq!(
            record(&[
                Cell::Text("plain"),
                Cell::Text("a,b"),
                Cell::Text("say \"hi\""),
                Cell::Text("two\nlines"),
                Cell::Empty,
                Cell::Number("-0.5".into()),
            ]),
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",,-0.5\r\n"
        );
        assert_eq!(
            record(&[
                Cell::Text("=1+1"),
                Cell::Text("+44 20"),
                Cell::Text("-x"),
                Cell::Text("@SUM(A1)"),
                Cell::Text("=HYPERLINK(\"http://x\",\"y\")"),
            ]),
            "'=1+1,'+44 20,'-x,'@SUM(A1),\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"\r\n"
        );
    }
}
