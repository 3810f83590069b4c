//! Diagnostics: what went wrong in a spec, where, and how to fix it.
//!
//! Every check in the compiler reports into a [`Diagnostic`] that carries
//! byte spans into the spec's source. Rendering (source snippet, caret,
//! `file:line:column`) is done by `codespan-reporting`, so the CLI, the
//! proc-macro and the tests all show the same text.

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label as CsLabel};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

/// A byte range in a spec's source text.
pub type Span = Range<usize>;

/// A spec's text and the name it is reported under (its path, usually).
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self { name: name.into(), text: text.into() }
    }

    /// 1-based line and column of a byte offset (columns count characters).
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(&self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One underlined place in the source.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub span: Span,
    pub message: String,
    /// The main place of the diagnostic (shown with `^`) or context (`-`).
    pub primary: bool,
}

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    /// Lines shown under the snippet: the arithmetic, the fixes.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, message: message.into(), labels: Vec::new(), notes: Vec::new() }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(message) }
    }

    pub fn primary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into(), primary: true });
        self
    }

    pub fn secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into(), primary: false });
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub fn help(self, help: impl Into<String>) -> Self {
        self.note(format!("help: {}", help.into()))
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The span of the first primary label, if any.
    pub fn primary_span(&self) -> Option<Span> {
        self.labels.iter().find(|l| l.primary).map(|l| l.span.clone())
    }

    fn to_codespan(&self) -> CsDiagnostic<()> {
        let base = match self.severity {
            Severity::Error => CsDiagnostic::error(),
            Severity::Warning => CsDiagnostic::warning(),
        };
        let labels = self
            .labels
            .iter()
            .map(|l| {
                let label = if l.primary { CsLabel::primary((), l.span.clone()) } else { CsLabel::secondary((), l.span.clone()) };
                label.with_message(l.message.clone())
            })
            .collect();
        base.with_message(self.message.clone()).with_labels(labels).with_notes(self.notes.clone())
    }

    /// The diagnostic as plain text: header, `file:line:col`, snippet, notes.
    pub fn render(&self, file: &SourceFile) -> String {
        let files = SimpleFile::new(file.name.as_str(), file.text.as_str());
        let diag = self.clamped(file).to_codespan();
        term::emit_into_string(&term::Config::default(), &files, &diag).unwrap_or_else(|_| format!("{}: {}\n", file.name, self.message))
    }

    /// Write the diagnostic to stderr, in colour when stderr is a terminal.
    pub fn emit_stderr(&self, file: &SourceFile) {
        use std::io::IsTerminal;
        use term::termcolor::{ColorChoice, StandardStream};
        let choice = if std::io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
        let files = SimpleFile::new(file.name.as_str(), file.text.as_str());
        let stream = StandardStream::stderr(choice);
        let mut lock = stream.lock();
        if term::emit_to_write_style(&mut lock, &term::Config::default(), &files, &self.clamped(file).to_codespan()).is_err() {
            eprint!("{}", self.render(file));
        }
    }

    /// Spans are produced by our own parser, but a diagnostic must never
    /// panic the renderer: clamp them into the text and onto char boundaries.
    fn clamped(&self, file: &SourceFile) -> Diagnostic {
        let mut d = self.clone();
        for l in &mut d.labels {
            let end = floor_char_boundary(&file.text, l.span.end.min(file.text.len()));
            let start = floor_char_boundary(&file.text, l.span.start.min(end));
            l.span = start..end;
        }
        d
    }
}

/// All the problems found in one spec. Returned as the error of parsing and
/// checking; its `Display` is the rendered diagnostics.
#[derive(Debug, Clone)]
pub struct SpecError {
    pub file: SourceFile,
    pub diagnostics: Vec<Diagnostic>,
}

impl SpecError {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn error_count(&self) -> usize {
        self.errors().count()
    }

    pub fn emit_stderr(&self) {
        for d in &self.diagnostics {
            d.emit_stderr(&self.file);
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            f.write_str(&d.render(&self.file))?;
        }
        let n = self.error_count();
        write!(f, "{}: {} error{} found", self.file.name, n, if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for SpecError {}

/// The closest of `candidates` to `word`, if it is close enough to be a
/// likely typo ("did you mean ...").
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| {
            // Keras/PyTorch spellings often extend ours: `convolution2d`, `kernel_size`.
            let prefix: String = word.chars().take(3).collect();
            let suffix: String = c.chars().skip(c.chars().count().saturating_sub(2)).collect();
            let contains =
                word.chars().count() >= 3 && (c.contains(word) || word.contains(c) || c.starts_with(&prefix) && word.ends_with(&suffix));
            let score = strsim::jaro_winkler(word, c).max(if contains { 0.85 } else { 0.0 });
            (score, c)
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `a`, `b` or `c` — a list of names in backticks for messages.
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {}", rest.join(", "), last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_handle_typos_extensions_and_any_text() {
        assert_eq!(did_you_mean("filter", ["filters", "kernel"]), Some("filters"));
        assert_eq!(did_you_mean("kernel_size", ["filters", "kernel"]), Some("kernel"));
        assert_eq!(did_you_mean("convolution2d", ["conv2d", "dense"]), Some("conv2d"));
        assert_eq!(did_you_mean("xyz", ["conv2d", "dense"]), None);
        // Found by the property tests: multi-byte characters near the cut.
        assert_eq!(did_you_mean("maéx_pool", ["max_pool", "avg_pool"]), Some("max_pool"));
        assert_eq!(did_you_mean("é", ["max_pool"]), None);
    }
}
