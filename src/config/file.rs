//! The config file: reading the TOML file named by `--config` or
//! `--check-config` into settings.
//!
//! Part of the configuration (see `config.rs`). Unknown keys are refused
//! here, and a TOML syntax error gets a line and column; the values
//! themselves are typed by `input.rs`, like those from the command line.

use std::path::Path;

use super::input::Raw;
use super::setting::{suggest, Setting};
use super::ConfigError;

/// Reads and parses the TOML config file into settings, refusing unknown keys.
pub(super) fn read_config_file(path: &Path) -> Result<Vec<(Setting, Raw)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| {
        let (line, column) = match error.span() {
            Some(span) => line_and_column(&text, span.start),
            None => (None, None),
        };
        ConfigError::Toml {
            path: path.to_owned(),
            line,
            column,
            message: error.message().to_owned(),
        }
    })?;
    table
        .into_iter()
        .map(|(key, value)| match Setting::from_name(&key) {
            Some(setting) => Ok((setting, Raw::Toml(value))),
            None if key == "config" || key == "check-config" => Err(ConfigError::KeyNotAllowed {
                path: path.to_owned(),
                key,
            }),
            None => Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                suggestion: suggest(&key),
                key,
            }),
        })
        .collect()
}

/// 1-based line and column (in characters) of a byte offset into `text`.
fn line_and_column(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let Some(before) = text.get(..offset) else {
        return (None, None);
    };
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (Some(line), Some(column))
}
