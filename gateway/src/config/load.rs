//! Reading a config: the file, then TOML with spans, then the pure
//! validation (tables, then the checks across them), then `resolve`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::check::Check;
use super::cross::{self, FactSheet};
use super::error::{ConfigError, ConfigErrors, Pos, TextMap};
use super::resolve::{resolve, Host};
use super::stage::Checked;
use super::tables::RawDocument;
use super::Config;

/// Reads, validates and resolves the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    resolve(load_checked(path)?, &Host::from_env())
}

/// Reads and validates the config file at `path` without following what it
/// names (secrets, TLS files): for the commands that only talk to the
/// running daemon (`gateway status`), which must work from a process that
/// cannot read the daemon's secrets (`updater health`).
pub fn load_checked(path: &Path) -> Result<Config<Checked>, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        reason: format!("cannot read the config file: {e}"),
        io: Some(Arc::new(e)),
    })?;
    let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    validate(&text, &file, &base)
}

/// Validates config `text` as the file `file`, relative paths against
/// `base` (both absolute). Pure: no file is read, nothing is looked up.
pub fn validate(text: &str, file: &Path, base: &Path) -> Result<Config<Checked>, ConfigErrors> {
    let map = TextMap::new(text);
    let raw: RawDocument = toml::from_str(text).map_err(|e| {
        let pos = map.pos(e.span().map(|s| s.start).unwrap_or(0));
        ConfigError::new(file, pos, e.message())
    })?;
    let mut sheet = FactSheet::new(&map);
    raw.facts(&mut sheet);
    let facts = sheet.finish();
    let mut cx = Check::new(file, &map, base, &facts);
    let config = raw.validate(&mut cx);
    let mut errors = cx.into_errors();
    errors.extend(cross::check(&facts, file));
    match (config, ConfigErrors::from_vec(errors)) {
        (Some(c), None) => Ok(c),
        (_, Some(errors)) => Err(errors),
        // A table gave up without saying why: a bug, but never a silent success.
        (None, None) => {
            Err(ConfigError::new(file, Pos::default(), "the configuration is not valid").into())
        }
    }
}
