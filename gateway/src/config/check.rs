//! The context of the pure validation step: where values are (spans →
//! line:column), the config file's directory for relative paths, the facts
//! of the other tables, and the errors found so far. Nothing here touches
//! the file system.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::cross::Facts;
use super::error::{At, ConfigError, Pos, TextMap};
use super::secrets::FileRef;
use super::{parse_duration, paths};

pub(crate) struct Check<'a> {
    file: &'a Path,
    map: &'a TextMap<'a>,
    base: &'a Path,
    facts: &'a Facts,
    errors: Vec<ConfigError>,
}

impl<'a> Check<'a> {
    pub(super) fn new(
        file: &'a Path,
        map: &'a TextMap<'a>,
        base: &'a Path,
        facts: &'a Facts,
    ) -> Check<'a> {
        Check {
            file,
            map,
            base,
            facts,
            errors: Vec::new(),
        }
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    /// The config file's directory: relative paths are relative to it.
    pub fn base(&self) -> &Path {
        self.base
    }

    /// What the other tables say (from their raw form).
    pub fn facts(&self) -> &Facts {
        self.facts
    }

    pub fn pos<T>(&self, v: &Spanned<T>) -> Pos {
        self.map.pos(v.span().start)
    }

    pub fn error<T>(&mut self, at: &Spanned<T>, reason: impl Into<String>) {
        let pos = self.pos(at);
        self.error_at(pos, reason);
    }

    pub fn error_at(&mut self, pos: Pos, reason: impl Into<String>) {
        self.errors.push(ConfigError::new(self.file, pos, reason));
    }

    /// Records the error and gives `None`, for `?` in a table's validation.
    pub fn fail<T, U>(&mut self, at: &Spanned<U>, reason: impl Into<String>) -> Option<T> {
        self.error(at, reason);
        None
    }

    /// How many errors so far: with [`Check::clean_since`], whether a part
    /// of the validation found any.
    pub fn mark(&self) -> usize {
        self.errors.len()
    }

    pub fn clean_since(&self, mark: usize) -> bool {
        self.errors.len() == mark
    }

    /// A path as written, made absolute against the config file's directory.
    pub fn path(&self, v: &str) -> PathBuf {
        paths::absolute(self.base, v)
    }

    /// `value`, remembered with the position of `v` and what it is.
    pub fn at<T, U>(&self, v: &Spanned<U>, value: T, what: impl Into<String>) -> At<T> {
        At {
            value,
            pos: self.pos(v),
            what: what.into(),
        }
    }

    /// A file reference (`credential:NAME` or a path), to be followed by `resolve`.
    pub fn file_ref(&mut self, what: String, v: &Spanned<String>) -> Option<At<FileRef>> {
        match FileRef::parse(&what, v.get_ref(), self.base) {
            Ok(f) => Some(self.at(v, f, what)),
            Err(e) => self.fail(v, e),
        }
    }

    /// `HOST:PORT` with an IP address.
    pub fn bind(&mut self, what: &str, v: &Spanned<String>, example: &str) -> Option<SocketAddr> {
        match v.get_ref().parse() {
            Ok(a) => Some(a),
            Err(_) => self.fail(
                v,
                format!(
                    "{what} '{}' is not HOST:PORT with an IP address (e.g. {example})",
                    v.get_ref()
                ),
            ),
        }
    }

    /// A duration such as "15s" (see [`parse_duration`]).
    pub fn duration(&mut self, what: &str, v: &Spanned<String>) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => self.fail(v, format!("{what}: {e}")),
        }
    }

    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }
}

/// Validates every item (so each one's errors are reported), then gives
/// them all, or `None` if any failed.
pub(crate) fn each<R, T>(
    items: impl IntoIterator<Item = R>,
    f: impl FnMut(R) -> Option<T>,
) -> Option<Vec<T>> {
    let all: Vec<Option<T>> = items.into_iter().map(f).collect();
    all.into_iter().collect()
}

/// `Some(None)` for an absent value, `Some(Some(_))` for a good one, `None`
/// for a bad one.
pub(crate) fn maybe<T, U>(v: Option<T>, f: impl FnOnce(T) -> Option<U>) -> Option<Option<U>> {
    match v {
        None => Some(None),
        Some(x) => f(x).map(Some),
    }
}
