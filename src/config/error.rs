//! Config errors that name the file, the line and column, and the key.

use std::fmt;
use std::io;
use std::ops::Range;

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {origin}: {reason}")]
    Read {
        /// The file as named by the caller.
        origin: String,
        /// The OS reason, without the "(os error N)" suffix.
        reason: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The text is not valid TOML.
    #[error("{0}")]
    Syntax(Diagnostic),
    /// The TOML is valid but a key is unknown, has the wrong type or an unacceptable value.
    #[error("{0}")]
    Invalid(Diagnostic),
}

impl ConfigError {
    /// The file, position and key, for errors that have them.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Read { .. } => None,
            ConfigError::Syntax(d) | ConfigError::Invalid(d) => Some(d),
        }
    }

    pub(super) fn read(origin: &str, source: io::Error) -> Self {
        let text = source.to_string();
        // io::Error appends " (os error 2)"; users want the reason only.
        let reason = match text.find(" (os error ") {
            Some(cut) => text[..cut].to_owned(),
            None => text,
        };
        ConfigError::Read {
            origin: origin.to_owned(),
            reason,
            source,
        }
    }
}

/// One problem at one place in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as named by the caller.
    pub origin: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// Dotted key path such as `listener[0].bind`; empty when no key applies.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic at byte `span.start` of `text`.
    pub(super) fn at(
        origin: &str,
        text: &str,
        span: Range<usize>,
        key: String,
        message: String,
    ) -> Self {
        let (line, column) = line_column(text, span.start);
        Diagnostic {
            origin: origin.to_owned(),
            line,
            column,
            key,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.origin, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// 1-based line and character column of a byte offset; offsets past the end clamp to it.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 6));
    }

    #[test]
    fn line_column_counts_characters_not_bytes() {
        assert_eq!(line_column("k = \"é\" x", 8), (1, 8));
    }

    #[test]
    fn read_error_drops_the_os_error_suffix() {
        let err = ConfigError::read("x.toml", io::Error::from_raw_os_error(2));
        assert_eq!(
            err.to_string(),
            "cannot read x.toml: No such file or directory"
        );
    }
}
