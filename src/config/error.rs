//! Errors: [`ConfigError`], its messages, and how they name the flag,
//! variable or file key to fix.
//!
//! Part of the configuration (see `config.rs`). Every way a command line,
//! environment or config file can be wrong is one variant here, so the
//! messages can be read, and kept consistent, in one place.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::Origin;

/// Why a command line, environment or config file was rejected.
///
/// The binary prints it and exits 2 without binding (docs/protocol.md, "The process").
/// Each variant names the flag, key or variable to fix; none of them echoes a
/// secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A flag pumphub does not know, like `--bogus` or `-x`. Check
    /// `pumphub --help` for the spelling.
    UnknownFlag {
        /// The flag as given, without any `=VALUE`.
        flag: String,
        /// The flag that was probably meant (`--max_connections` suggests
        /// `max-connections`).
        suggestion: Option<&'static str>,
    },
    /// A word that is not a flag (pumphub takes no positional arguments),
    /// often a value given to a flag that takes none.
    UnexpectedArgument {
        /// The word as given.
        arg: String,
    },
    /// A flag that needs a value came last, or was followed by another `--`
    /// flag. A value that starts with `--` can be given as `--flag=--value`.
    MissingValue {
        /// The flag, with its dashes.
        flag: String,
    },
    /// A bare flag such as `--allow-client-publish` or `--help` was given as
    /// `--flag=VALUE`.
    UnexpectedValue {
        /// The flag, with its dashes.
        flag: String,
        /// What followed the `=`.
        value: String,
    },
    /// A flag that is not repeatable was given twice; only
    /// `--allowed-origin` may repeat. Remove one.
    RepeatedFlag {
        /// The flag, with its dashes.
        flag: String,
    },
    /// Two flags that exclude each other, such as `--config` and
    /// `--check-config`.
    ConflictingFlags {
        /// The flag given first.
        first: &'static str,
        /// The flag given second.
        second: &'static str,
    },
    /// A value that has the wrong form: not a number, a bad address, origin or
    /// channel name, an empty token.
    InvalidValue {
        /// The setting's name, as a flag without `--` and as a file key.
        setting: &'static str,
        /// The value as given; empty for secrets, which are never echoed.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
        /// Where the value came from; `None` from
        /// [`Config::validate`](crate::config::Config::validate).
        origin: Option<Origin>,
    },
    /// A number outside the range a setting accepts, such as
    /// `--queue-size 0`.
    OutOfRange {
        /// The setting's name, as a flag without `--` and as a file key.
        setting: &'static str,
        /// The value given; durations in milliseconds.
        value: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted (`u64::MAX` when there is no cap).
        max: u64,
        /// Where the value came from; `None` from
        /// [`Config::validate`](crate::config::Config::validate).
        origin: Option<Origin>,
    },
    /// The config file could not be read (missing, unreadable, not UTF-8).
    /// The cause is in [`std::error::Error::source`].
    ReadFile {
        /// The file, as given.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The config file is not valid TOML.
    Toml {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the error, when the parser knows it.
        line: Option<usize>,
        /// 1-based column (in characters) of the error, when known.
        column: Option<usize>,
        /// The parser's description.
        message: String,
    },
    /// A key in the config file that is not a setting (tables such as
    /// `[limits]` are keys too). Keys are the flag names without `--`.
    UnknownKey {
        /// The file, as given.
        path: PathBuf,
        /// The key as written.
        key: String,
        /// The key that was probably meant (`max_connections` suggests
        /// `max-connections`).
        suggestion: Option<&'static str>,
    },
    /// `config` or `check-config` in a config file: they choose the file, so
    /// they only work on the command line.
    KeyNotAllowed {
        /// The file, as given.
        path: PathBuf,
        /// The key as written.
        key: String,
    },
    /// A config-file value of the wrong TOML type, such as
    /// `queue-size = "10"` (a string where an integer belongs).
    WrongType {
        /// The file, as given.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// The type expected, such as "an integer".
        expected: &'static str,
        /// The type found, such as "a string".
        found: &'static str,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownFlag { flag, suggestion } => {
                write!(f, "unknown flag `{flag}`")?;
                match suggestion {
                    Some(name) => write!(f, " (did you mean `--{name}`?)"),
                    None => Ok(()),
                }
            }
            ConfigError::UnexpectedArgument { arg } => {
                write!(f, "unexpected argument `{arg}`: pumphub takes only flags")
            }
            ConfigError::MissingValue { flag } => write!(f, "flag `{flag}` needs a value"),
            ConfigError::UnexpectedValue { flag, value } => {
                write!(f, "flag `{flag}` takes no value, got `{value}`")
            }
            ConfigError::RepeatedFlag { flag } => {
                write!(f, "flag `{flag}` is given more than once")
            }
            ConfigError::ConflictingFlags { first, second } => {
                write!(f, "flags `{first}` and `{second}` cannot be used together")
            }
            ConfigError::InvalidValue {
                setting,
                value,
                reason,
                origin,
            } => {
                let place = describe(setting, origin.as_ref());
                match value.as_str() {
                    "" => write!(f, "invalid value for {place}: {reason}"),
                    value => write!(f, "invalid value `{value}` for {place}: {reason}"),
                }
            }
            ConfigError::OutOfRange {
                setting,
                value,
                min,
                max,
                origin,
            } => {
                let place = describe(setting, origin.as_ref());
                write!(f, "{place} is out of range: must be ")?;
                if *max == u64::MAX {
                    write!(f, "at least {min}")?;
                } else if *min == 0 {
                    write!(f, "at most {max}")?;
                } else {
                    write!(f, "between {min} and {max}")?;
                }
                write!(f, ", got {value}")
            }
            ConfigError::ReadFile { path, .. } => {
                write!(f, "cannot read config file {}", path.display())
            }
            ConfigError::Toml {
                path,
                line,
                column,
                message,
            } => {
                write!(f, "config file {} is not valid TOML", path.display())?;
                if let (Some(line), Some(column)) = (line, column) {
                    write!(f, " at line {line}, column {column}")?;
                }
                write!(f, ": {message}")
            }
            ConfigError::UnknownKey {
                path,
                key,
                suggestion,
            } => {
                write!(f, "unknown key `{key}` in config file {}", path.display())?;
                match suggestion {
                    Some(name) => write!(f, " (did you mean `{name}`?)"),
                    None => write!(f, " (keys are the flag names without `--`)"),
                }
            }
            ConfigError::KeyNotAllowed { path, key } => write!(
                f,
                "key `{key}` is not allowed in config file {}: it only works as a flag",
                path.display()
            ),
            ConfigError::WrongType {
                path,
                key,
                expected,
                found,
            } => {
                write!(
                    f,
                    "`{key}` in config file {} must be {expected}, found {found}",
                    path.display()
                )?;
                if *expected == "an integer" && *found == "a string" {
                    write!(f, " (write numbers without quotes)")?;
                }
                Ok(())
            }
        }
    }
}

impl ConfigError {
    /// True if the message already names the flag or key that was probably
    /// meant, so pointing at `--help` as well would be a second hint.
    pub fn has_suggestion(&self) -> bool {
        matches!(
            self,
            ConfigError::UnknownFlag {
                suggestion: Some(_),
                ..
            } | ConfigError::UnknownKey {
                suggestion: Some(_),
                ..
            }
        )
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::ReadFile { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Names a setting the way its source spells it, for error messages.
fn describe(setting: &str, origin: Option<&Origin>) -> String {
    match origin {
        Some(Origin::CommandLine) => format!("--{setting}"),
        Some(Origin::Environment { var }) => format!("environment variable {var}"),
        Some(Origin::File { path }) => {
            format!("`{setting}` in config file {}", path.display())
        }
        None => format!("`{setting}`"),
    }
}
