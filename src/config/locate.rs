//! Key paths (`listener[0].bind`) and finding where a key path is written in the file.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// A table key.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A path from the document root to a key, displayed as `gateway.udp[1].bind`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The path one key deeper.
    pub(super) fn key(&self, key: &str) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_owned()));
        path
    }

    /// The path one array element deeper.
    pub(super) fn index(&self, index: usize) -> KeyPath {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }

    /// The path serde walked to the value that failed to deserialize.
    pub(super) fn from_serde(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment as S;
        let segments = path
            .iter()
            .filter_map(|segment| match segment {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Key(key.clone())),
                S::Enum { variant } => Some(Segment::Key(variant.clone())),
                S::Unknown => None,
            })
            .collect();
        KeyPath(segments)
    }

    /// The byte span of the deepest part of this path written in the document:
    /// the value if the whole path is there, otherwise the nearest enclosing table.
    pub(super) fn locate(&self, root: &Spanned<DeTable<'_>>) -> Option<Range<usize>> {
        let mut best: Option<Range<usize>> = None;
        let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
        let mut array: Option<&[Spanned<DeValue<'_>>]> = None;
        for segment in &self.0 {
            let found = match segment {
                Segment::Key(key) => table.and_then(|t| {
                    t.iter()
                        .find(|(k, _)| k.get_ref().as_ref() == key.as_str())
                        .map(|(_, v)| v)
                }),
                Segment::Index(i) => array.and_then(|a| a.get(*i)),
            };
            let Some(value) = found else { break };
            // Implicit tables (`[a.b]` with no `[a]`) have no text of their own.
            if !value.span().is_empty() {
                best = Some(value.span());
            }
            table = value.get_ref().as_table();
            array = value.get_ref().as_array().map(|a| &a[..]);
        }
        best
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The key being written at byte `offset` of a document that failed to parse,
/// found from the table headers above it and the `key =` on its line.
pub(super) fn key_at(text: &str, offset: usize) -> KeyPath {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);

    // Array-of-tables headers seen so far, with their element counts.
    let mut arrays: Vec<(String, usize)> = Vec::new();
    let mut header = KeyPath::default();
    for line in text[..line_start].lines() {
        let Some((name, is_array)) = parse_header(line) else {
            continue;
        };
        let dotted = name.join(".");
        if is_array {
            // A new element of `a` starts fresh arrays nested in it (`a.b`).
            arrays.retain(|(n, _)| !n.starts_with(&format!("{dotted}.")));
            match arrays.iter_mut().find(|(n, _)| *n == dotted) {
                Some((_, count)) => *count += 1,
                None => arrays.push((dotted.clone(), 1)),
            }
        }
        header = KeyPath::default();
        for depth in 1..=name.len() {
            header = header.key(&name[depth - 1]);
            let prefix = name[..depth].join(".");
            let inside = depth < name.len() || is_array;
            if let Some((_, count)) = arrays.iter().find(|(n, _)| *n == prefix)
                && inside
            {
                header = header.index(count - 1);
            }
        }
    }

    let line = &text[line_start..line_end];
    if parse_header(line).is_some() {
        return header;
    }
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => key_segments(key.trim())
            .iter()
            .fold(header, |p, k| p.key(k)),
        _ => header,
    }
}

/// `[a.b]` → (["a", "b"], false); `[[a.b]]` → (["a", "b"], true).
fn parse_header(line: &str) -> Option<(Vec<String>, bool)> {
    let line = line.trim();
    let line = match line.find('#') {
        // A '#' inside a quoted key is rare enough to ignore here.
        Some(i) => line[..i].trim_end(),
        None => line,
    };
    if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
        return Some((key_segments(inner), true));
    }
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    Some((key_segments(inner), false))
}

fn key_segments(dotted: &str) -> Vec<String> {
    dotted
        .split('.')
        .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_displays_dotted_with_indexes() {
        let path = KeyPath::default()
            .key("gateway")
            .key("udp")
            .index(1)
            .key("bind");
        assert_eq!(path.to_string(), "gateway.udp[1].bind");
    }

    #[test]
    fn key_at_names_the_key_on_the_error_line() {
        let text = "[broker]\nmax_keepalive = = 3\n";
        assert_eq!(key_at(text, 25).to_string(), "broker.max_keepalive");
    }

    #[test]
    fn key_at_counts_array_of_tables_elements() {
        let text = "[[listener]]\nbind = \"a\"\n[[listener]]\nbind = 0.0.0.0\n";
        let offset = text.rfind("0.0").unwrap();
        assert_eq!(key_at(text, offset).to_string(), "listener[1].bind");
    }

    #[test]
    fn key_at_indexes_subtables_of_the_current_array_element() {
        let text = "[[bridge]]\n[[bridge]]\n[bridge.tls]\ninsecure = yes\n";
        let offset = text.rfind("yes").unwrap();
        assert_eq!(key_at(text, offset).to_string(), "bridge[1].tls.insecure");
    }

    #[test]
    fn key_at_restarts_nested_arrays_for_each_parent_element() {
        let text = "[[a]]\n[[a.b]]\n[[a.b]]\n[[a]]\n[[a.b]]\nx = ?\n";
        let offset = text.rfind('?').unwrap();
        assert_eq!(key_at(text, offset).to_string(), "a[1].b[0].x");
    }
}
