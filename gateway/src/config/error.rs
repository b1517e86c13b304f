//! Configuration errors. Each names the file, the line and column of the
//! value at fault, and what to do; a check reports every problem it finds,
//! in file order, not only the first.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in the config file: 1-based line and column (in characters).
/// Line 0 means the problem has no place (the file is unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// A value kept past validation with where it was written and what it is
/// (`listener 'ehr': tls.cert`), so that the checks made later (the
/// cross-table checks, `resolve`) still name the right line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    pub value: T,
    pub pos: Pos,
    /// The field, prefixed by its table: the start of every message about it.
    pub what: String,
}

/// One configuration problem, located in its file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{}", place(.file, .line, .column), .reason)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (e.g. the file is unreadable).
    pub line: usize,
    pub column: usize,
    pub reason: String,
    /// The I/O error behind an unreadable config file.
    #[source]
    pub io: Option<Arc<std::io::Error>>,
}

fn place(file: &Path, line: &usize, column: &usize) -> String {
    if *line == 0 {
        format!("{}: ", file.display())
    } else {
        format!("{}:{line}:{column}: ", file.display())
    }
}

impl ConfigError {
    pub fn new(file: &Path, pos: Pos, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            reason: reason.into(),
            io: None,
        }
    }

    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
}

/// Every problem a check found (never empty), in file order: one per line
/// when printed.
#[derive(Debug, Clone)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// `None` when there is nothing to report. Sorts by position and drops
    /// exact repeats.
    pub fn from_vec(mut errors: Vec<ConfigError>) -> Option<ConfigErrors> {
        errors.sort_by_key(ConfigError::pos);
        errors.dedup_by(|a, b| a.pos() == b.pos() && a.reason == b.reason);
        (!errors.is_empty()).then_some(ConfigErrors(errors))
    }

    /// The first problem in the file.
    pub fn first(&self) -> &ConfigError {
        &self.0[0]
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: there is at least one error.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.first())
    }
}

/// Byte offsets of the config text → [`Pos`].
pub(super) struct TextMap<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl<'a> TextMap<'a> {
    pub(super) fn new(text: &'a str) -> TextMap<'a> {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        TextMap { text, line_starts }
    }

    pub(super) fn pos(&self, offset: usize) -> Pos {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        Pos {
            line,
            column: self.text[start..offset].chars().count() + 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_character_columns() {
        let m = TextMap::new("a = 1\nnäme = \"x\"\n");
        assert_eq!(m.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(m.pos(6), Pos { line: 2, column: 1 });
        // 'ä' is two bytes but one column.
        assert_eq!(m.pos(12), Pos { line: 2, column: 6 });
        assert_eq!(m.pos(999).line, 3);
    }

    #[test]
    fn errors_print_in_file_order_one_per_line() {
        let f = Path::new("/etc/gw/gateway.toml");
        let at = |line| Pos { line, column: 3 };
        let errors = ConfigErrors::from_vec(vec![
            ConfigError::new(f, at(9), "second"),
            ConfigError::new(f, at(2), "first"),
            ConfigError::new(f, at(9), "second"),
        ])
        .unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors.to_string(),
            "/etc/gw/gateway.toml:2:3: first\n/etc/gw/gateway.toml:9:3: second"
        );
        assert!(ConfigErrors::from_vec(Vec::new()).is_none());
        let unplaced = ConfigError::new(f, Pos::default(), "cannot read");
        assert_eq!(unplaced.to_string(), "/etc/gw/gateway.toml: cannot read");
    }
}
