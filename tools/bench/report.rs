//! One JSON line and one human-readable line per scenario run.

use std::fmt::Write as _;

/// A flat JSON object built field by field, in insertion order.
#[derive(Debug, Default)]
pub struct Report {
    json: String,
    human: String,
}

impl Report {
    /// A report for `scenario` against `target` (a label chosen by the caller).
    pub fn new(scenario: &str, target: &str) -> Report {
        let mut r = Report::default();
        r.str("scenario", scenario).str("target", target);
        r.human = format!("{scenario:<8} [{target}]");
        r
    }

    fn key(&mut self, k: &str) {
        self.json.push(if self.json.is_empty() { '{' } else { ',' });
        let _ = write!(self.json, "\"{k}\":");
    }

    /// Adds a string field.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Report {
        self.key(k);
        self.json.push('"');
        for c in v.chars() {
            match c {
                '"' => self.json.push_str("\\\""),
                '\\' => self.json.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.json, "\\u{:04x}", c as u32);
                }
                c => self.json.push(c),
            }
        }
        self.json.push('"');
        self
    }

    /// Adds an integer field.
    pub fn int(&mut self, k: &str, v: u64) -> &mut Report {
        self.key(k);
        let _ = write!(self.json, "{v}");
        self
    }

    /// Adds a number field (null when not finite).
    pub fn num(&mut self, k: &str, v: f64) -> &mut Report {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.json, "{v:.3}");
        } else {
            self.json.push_str("null");
        }
        self
    }

    /// Adds an optional number field (null when absent).
    pub fn opt(&mut self, k: &str, v: Option<f64>) -> &mut Report {
        match v {
            Some(v) => self.num(k, v),
            None => {
                self.key(k);
                self.json.push_str("null");
                self
            }
        }
    }

    /// Appends text to the human-readable line.
    pub fn say(&mut self, text: &str) -> &mut Report {
        self.human.push_str("  ");
        self.human.push_str(text);
        self
    }

    /// Prints the JSON line, then the human line.
    pub fn print(&mut self) {
        self.json.push('}');
        println!("{}", self.json);
        println!("# {}", self.human);
    }
}

/// `x` as a percentage string, or "-" when absent.
pub fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}%"))
}
