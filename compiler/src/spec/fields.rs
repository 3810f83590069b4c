//! Typed, spanned access to one TOML table of a spec.
//!
//! Every getter reports a problem into the shared error list and returns
//! `None` for "invalid"; callers evaluate all their fields before combining
//! them, so one run reports every bad field, not just the first.

use convc_runtime::train::optim::Bounds;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{At, Padding, Pair};
use crate::diag::{Diagnostic, Span, did_you_mean, one_of};

/// The largest size accepted for any one dimension, count or stride. Larger
/// values are certainly typos, and this bound keeps products of a few sizes
/// far from overflow before the graph checks them properly.
pub const MAX_SIZE: i64 = 1 << 24;

pub struct Table<'a, 'i> {
    /// How the table is named in messages, e.g. "layer `conv1`".
    pub what: String,
    pub span: Span,
    entries: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(what: impl Into<String>, span: Span, entries: &'a DeTable<'i>) -> Self {
        Self { what: what.into(), span, entries }
    }

    pub fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
    }

    /// Report every key not in `allowed`, suggesting the closest one.
    pub fn reject_unknown_keys(&self, allowed: &[&str], errs: &mut Vec<Diagnostic>) {
        for (key, _) in self.entries.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let mut d = Diagnostic::error(format!("unknown key `{name}` in {}", self.what)).primary(key.span(), "not a key of this table");
            if let Some(close) = did_you_mean(name, allowed.iter().copied()) {
                d = d.help(format!("did you mean `{close}`?"));
            }
            errs.push(d.note(format!("the keys allowed here are {}", one_of(allowed))));
        }
    }

    fn missing(&self, key: &str, expected: &str, errs: &mut Vec<Diagnostic>) {
        errs.push(
            Diagnostic::error(format!("{} has no `{key}`", self.what))
                .primary(self.span.clone(), format!("`{key}` is required here"))
                .help(format!("add `{key} = {expected}`")),
        );
    }

    fn mistyped(&self, key: &str, value: &Spanned<DeValue<'_>>, expected: &str, errs: &mut Vec<Diagnostic>) {
        errs.push(
            Diagnostic::error(format!("`{key}` of {} must be {expected}", self.what))
                .primary(value.span(), format!("this is {}", describe(value.get_ref()))),
        );
    }

    /// A whole number `>= min`, or `default` when absent.
    pub fn size(&self, key: &str, default: Option<usize>, min: i64, errs: &mut Vec<Diagnostic>) -> Option<At<usize>> {
        let Some(value) = self.get(key) else {
            return match default {
                Some(d) => Some(At::new(d, self.span.clone())),
                None => {
                    self.missing(key, if min > 0 { "<a positive integer>" } else { "<an integer>" }, errs);
                    None
                }
            };
        };
        self.size_value(key, value, min, errs).map(|n| At::new(n, value.span()))
    }

    /// A whole number `>= min` if the key is present.
    pub fn optional_size(&self, key: &str, min: i64, errs: &mut Vec<Diagnostic>) -> Option<usize> {
        self.size_value(key, self.get(key)?, min, errs)
    }

    pub fn size_value(&self, key: &str, value: &Spanned<DeValue<'_>>, min: i64, errs: &mut Vec<Diagnostic>) -> Option<usize> {
        let expected = if min > 0 { "a positive integer" } else { "a non-negative integer" };
        let n = match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.mistyped(key, value, expected, errs);
                return None;
            }
        };
        match n {
            Some(n) if n < min => {
                let why = if min > 0 { "sizes, counts and strides start at 1" } else { "it cannot be negative" };
                errs.push(
                    Diagnostic::error(format!("`{key}` of {} must be {expected}", self.what))
                        .primary(value.span(), format!("{n} is out of range: {why}")),
                );
                None
            }
            Some(n) if n <= MAX_SIZE => Some(n as usize),
            _ => {
                errs.push(
                    Diagnostic::error(format!("`{key}` of {} is too large", self.what))
                        .primary(value.span(), format!("the largest accepted value is {MAX_SIZE}")),
                );
                None
            }
        }
    }

    /// An integer or a `[height, width]` pair of integers.
    pub fn pair(&self, key: &str, default: Option<Pair>, min: i64, errs: &mut Vec<Diagnostic>) -> Option<At<Pair>> {
        let Some(value) = self.get(key) else {
            return match default {
                Some(d) => Some(At::new(d, self.span.clone())),
                None => {
                    self.missing(key, "<n> or [<height>, <width>]", errs);
                    None
                }
            };
        };
        self.pair_value(key, value, min, errs).map(|p| At::new(p, value.span()))
    }

    fn pair_value(&self, key: &str, value: &Spanned<DeValue<'_>>, min: i64, errs: &mut Vec<Diagnostic>) -> Option<Pair> {
        match value.get_ref() {
            DeValue::Integer(_) => self.size_value(key, value, min, errs).map(|n| [n, n]),
            DeValue::Array(items) if items.len() == 2 => {
                let h = self.size_value(key, &items[0], min, errs);
                let w = self.size_value(key, &items[1], min, errs);
                Some([h?, w?])
            }
            _ => {
                self.mistyped(key, value, "an integer or a [height, width] pair", errs);
                None
            }
        }
    }

    /// `padding`: an integer, a pair, `"same"` or `"valid"`.
    pub fn padding(&self, key: &str, errs: &mut Vec<Diagnostic>) -> Option<At<Padding>> {
        let Some(value) = self.get(key) else {
            return Some(At::new(Padding::Valid, self.span.clone()));
        };
        let padding = match value.get_ref() {
            DeValue::String(s) => match s.as_ref() {
                "same" => Padding::Same,
                "valid" => Padding::Valid,
                other => {
                    let mut d = Diagnostic::error(format!("unknown padding \"{other}\" in {}", self.what))
                        .primary(value.span(), "expected \"same\", \"valid\", an integer or a [height, width] pair");
                    if let Some(close) = did_you_mean(other, ["same", "valid"]) {
                        d = d.help(format!("did you mean \"{close}\"?"));
                    }
                    errs.push(d);
                    return None;
                }
            },
            _ => Padding::Explicit(self.pair_value(key, value, 0, errs)?),
        };
        Some(At::new(padding, value.span()))
    }

    pub fn string(&self, key: &str, errs: &mut Vec<Diagnostic>) -> Option<At<&'a str>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(At::new(s.as_ref(), value.span())),
            _ => {
                self.mistyped(key, value, "a string", errs);
                None
            }
        }
    }

    /// One of `choices` (a string), or `default` when absent. Unknown values
    /// are reported with a suggestion; `None` means absent-without-default or
    /// invalid.
    pub fn choice(&self, key: &str, choices: &[&'static str], errs: &mut Vec<Diagnostic>) -> Option<At<&'static str>> {
        let s = self.string(key, errs)?;
        if let Some(&c) = choices.iter().find(|&&c| c == s.value) {
            return Some(At::new(c, s.span));
        }
        let mut d = Diagnostic::error(format!("unknown `{key}` \"{}\" in {}", s.value, self.what))
            .primary(s.span.clone(), format!("expected {}", one_of(choices)));
        if let Some(close) = did_you_mean(s.value, choices.iter().copied()) {
            d = d.help(format!("did you mean \"{close}\"?"));
        }
        errs.push(d);
        None
    }

    pub fn boolean(&self, key: &str, default: bool, errs: &mut Vec<Diagnostic>) -> Option<bool> {
        let Some(value) = self.get(key) else { return Some(default) };
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.mistyped(key, value, "true or false", errs);
                None
            }
        }
    }

    /// A finite number within `range`, or `default`.
    pub fn number(&self, key: &str, default: Option<f64>, range: Bounds, errs: &mut Vec<Diagnostic>) -> Option<At<f64>> {
        let Some(value) = self.get(key) else {
            return default.map(|d| At::new(d, self.span.clone()));
        };
        let x = match value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|i| i as f64),
            _ => {
                self.mistyped(key, value, "a number", errs);
                return None;
            }
        };
        match x {
            Some(x) if range.contains(x) => Some(At::new(x, value.span())),
            _ => {
                errs.push(
                    Diagnostic::error(format!("`{key}` of {} is out of range", self.what))
                        .primary(value.span(), format!("expected {range}")),
                );
                None
            }
        }
    }

    /// A sub-table (inline or not).
    pub fn table(&self, key: &str, errs: &mut Vec<Diagnostic>) -> Option<(Span, &'a DeTable<'i>)> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some((value.span(), t)),
            _ => {
                self.mistyped(key, value, "a table", errs);
                None
            }
        }
    }
}

/// "a string \"x\"", "an integer 3" ... for "this is ..." labels.
pub fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("a string \"{s}\""),
        DeValue::Integer(i) => format!("an integer {}", i.as_str()),
        DeValue::Float(f) => format!("a float {}", f.as_str()),
        DeValue::Boolean(b) => format!("a boolean {b}"),
        DeValue::Datetime(_) => "a date-time".to_string(),
        DeValue::Array(a) => format!("an array of {} item{}", a.len(), if a.len() == 1 { "" } else { "s" }),
        DeValue::Table(_) => "a table".to_string(),
    }
}
