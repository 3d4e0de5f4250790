//! Diagnostics: byte offsets into a source file, turned into `path:line:col`.
//!
//! The manifest checker records each problem as a [`Diagnostic`] (a byte
//! offset and a message). A [`SourceFile`] knows the path as the user typed
//! it and the text, so it can turn those into [`Problem`]s, the one-line
//! `path:line:col: message` form that CONTRACTS.md section 3 promises.
//! Lines and columns are 1-based; columns count characters, not bytes.
//!
//! Two promises hold for every rendered problem: it is one line (control
//! characters and line separators in the path or the message, which may
//! quote the manifest, are escaped, so echoed text can never start a line
//! of its own), and locating n problems in a file costs one pass over the
//! text plus sorting, never a rescan from byte 0 per problem.

use std::borrow::Cow;
use std::fmt;

/// One problem at a byte offset of the source being checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte offset of the offending key or value (clamped when rendered).
    pub offset: usize,
    /// What is wrong, without the location.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `offset`.
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        Diagnostic {
            offset,
            message: message.into(),
        }
    }
}

/// A 1-based line and column (column in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

impl LineCol {
    /// Where byte `offset` of `text` lies. An offset past the end, or inside
    /// a multi-byte character, is moved back to the nearest character start.
    pub fn of(text: &str, offset: usize) -> LineCol {
        let mut at = offset.min(text.len());
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let before = &text[..at];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        LineCol {
            line: before.matches('\n').count() + 1,
            col: before[line_start..].chars().count() + 1,
        }
    }
}

/// A file being checked: the path exactly as given, and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path as the user typed it (used verbatim in messages).
    pub path: String,
    /// The file's text.
    pub text: String,
}

impl SourceFile {
    /// Renders a diagnostic against this file.
    pub fn problem(&self, d: &Diagnostic) -> Problem {
        Problem {
            path: self.path.clone(),
            at: Some(LineCol::of(&self.text, d.offset)),
            message: d.message.clone(),
        }
    }

    /// Renders diagnostics against this file, in source order. The
    /// locations are found in one forward pass over the text.
    pub fn problems(&self, diags: &[Diagnostic]) -> Problems {
        let mut sorted: Vec<&Diagnostic> = diags.iter().collect();
        sorted.sort_by_key(|d| d.offset);
        let mut walk = Walker::new(&self.text);
        Problems(
            sorted
                .into_iter()
                .map(|d| Problem {
                    path: self.path.clone(),
                    at: Some(walk.advance_to(d.offset)),
                    message: d.message.clone(),
                })
                .collect(),
        )
    }
}

/// A cursor that moves forward through a text, keeping line and column.
struct Walker<'t> {
    text: &'t str,
    at: usize,
    here: LineCol,
}

impl<'t> Walker<'t> {
    fn new(text: &'t str) -> Self {
        Walker {
            text,
            at: 0,
            here: LineCol { line: 1, col: 1 },
        }
    }

    /// Where byte `offset` lies (clamped like [`LineCol::of`]); offsets
    /// must not decrease between calls.
    fn advance_to(&mut self, offset: usize) -> LineCol {
        let mut to = offset.min(self.text.len()).max(self.at);
        while !self.text.is_char_boundary(to) {
            to -= 1;
        }
        for c in self.text[self.at..to].chars() {
            if c == '\n' {
                self.here = LineCol {
                    line: self.here.line + 1,
                    col: 1,
                };
            } else {
                self.here.col += 1;
            }
        }
        self.at = to;
        self.here
    }
}

/// `s` with every character that could end or hide a line escaped:
/// control characters (C0, DEL, C1) and the Unicode line and paragraph
/// separators, as `\n`, `\r`, `\t` or `\u{..}`. Other text is unchanged.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    let needs = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// One located problem: `path:line:col: message`, or `path: message` when
/// no position applies (an unreadable file, a bad ELF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file the problem is in.
    pub path: String,
    /// Where in it, if a position applies.
    pub at: Option<LineCol>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with a whole file.
    pub fn file(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            at: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, message) = (escape_controls(&self.path), escape_controls(&self.message));
        match self.at {
            Some(LineCol { line, col }) => write!(f, "{path}:{line}:{col}: {message}"),
            None => write!(f, "{path}: {message}"),
        }
    }
}

/// Every problem found, one per line when displayed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// The rendered lines.
    pub fn lines(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col() {
        let t = "ab\ncdé f\n";
        assert_eq!(LineCol::of(t, 0), LineCol { line: 1, col: 1 });
        assert_eq!(LineCol::of(t, 2), LineCol { line: 1, col: 3 });
        assert_eq!(LineCol::of(t, 3), LineCol { line: 2, col: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(LineCol::of(t, 8), LineCol { line: 2, col: 5 });
        // Inside 'é': moved back to its start.
        assert_eq!(LineCol::of(t, 6), LineCol { line: 2, col: 3 });
        assert_eq!(LineCol::of(t, 999), LineCol { line: 3, col: 1 });
    }

    #[test]
    fn walker_agrees_with_line_col() {
        let t = "ab\ncdé f\n\nxyz";
        let mut w = Walker::new(t);
        for offset in [0, 0, 2, 3, 6, 8, 9, 10, 12, 999] {
            assert_eq!(w.advance_to(offset), LineCol::of(t, offset), "{offset}");
        }
    }

    #[test]
    fn one_line_whatever_the_message() {
        let p = Problem {
            path: "m\n.toml".into(),
            at: Some(LineCol { line: 2, col: 3 }),
            message: "found \"a\nSCENARIO x PASS\u{2028}\r\t\u{1b}\"".into(),
        };
        let s = p.to_string();
        assert_eq!(s.lines().count(), 1);
        assert_eq!(
            s,
            "m\\n.toml:2:3: found \"a\\nSCENARIO x PASS\\u{2028}\\r\\t\\u{1b}\""
        );
        assert_eq!(escape_controls("plain é"), "plain é");
    }

    #[test]
    fn render_sorted() {
        let src = SourceFile {
            path: "m.toml".into(),
            text: "a\nb\n".into(),
        };
        let p = src.problems(&[Diagnostic::new(2, "second"), Diagnostic::new(0, "first")]);
        assert_eq!(p.lines(), ["m.toml:1:1: first", "m.toml:2:1: second"]);
        assert_eq!(Problem::file("x", "gone").to_string(), "x: gone");
    }
}
