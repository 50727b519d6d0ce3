//! Input: a value as its source gave it ([`Raw`]), and how it gets its type
//! ([`Input`]).
//!
//! Part of the configuration (see `config.rs`). The command line gives text,
//! the file gives TOML values; both are read here into a number, a duration,
//! a switch, a list or a log level. Only type and syntax are checked here
//! ("is this a whole number?"); ranges are left to `validate.rs`.

use std::time::Duration;

use log::LevelFilter;

use super::setting::Setting;
use super::{ConfigError, IpRange, LogTimestamps, Origin, LISTENER_OFF};

/// A value as its source gave it, before its type is checked.
pub(super) enum Raw {
    /// `--name VALUE`, `--name=VALUE`, or an environment variable.
    Text(String),
    /// Every `--allowed-origin VALUE`, in command-line order.
    Texts(Vec<String>),
    /// A bare `--allow-client-publish`.
    Switch,
    /// A config-file value, already typed by TOML.
    Toml(toml::Value),
}

/// One raw value for one setting, with where it came from.
///
/// Its readers check type and syntax only ("is this a whole number?");
/// ranges are checked later, on the merged config, by
/// [`Rules`](super::validate::Rules).
pub(super) struct Input<'a> {
    pub(super) setting: Setting,
    pub(super) raw: Raw,
    pub(super) origin: &'a Origin,
}

impl Input<'_> {
    pub(super) fn text(self) -> Result<String, ConfigError> {
        match self.raw {
            Raw::Text(text) | Raw::Toml(toml::Value::String(text)) => Ok(text),
            _ => Err(self.mismatch("a string")),
        }
    }

    /// A listener's address, or `off` (any case) for no listener.
    pub(super) fn listener(self) -> Result<Option<String>, ConfigError> {
        let text = self.text()?;
        Ok((!text.eq_ignore_ascii_case(LISTENER_OFF)).then_some(text))
    }

    pub(super) fn switch(self) -> Result<bool, ConfigError> {
        match self.raw {
            Raw::Switch => Ok(true),
            Raw::Toml(toml::Value::Boolean(on)) => Ok(on),
            // From the environment.
            Raw::Text(ref text) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "on" | "yes" => Ok(true),
                "false" | "0" | "off" | "no" => Ok(false),
                _ => Err(self.invalid(text, "expected true or false")),
            },
            _ => Err(self.mismatch("true or false")),
        }
    }

    pub(super) fn list(self) -> Result<Vec<String>, ConfigError> {
        match self.raw {
            Raw::Texts(values) => Ok(values),
            // From the environment: one variable, items separated by commas.
            Raw::Text(text) => Ok(text.split(',').map(|item| item.trim().to_owned()).collect()),
            Raw::Toml(toml::Value::Array(ref items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.clone()),
                    other => Err(self.wrong_type("an array of strings", in_array(other))),
                })
                .collect(),
            _ => Err(self.mismatch("an array of strings")),
        }
    }

    /// Comma-separated text, or several of them: a repeated flag, a TOML
    /// string or an array of strings. Used for secrets, which therefore
    /// cannot contain a comma; empty items are kept for validation to name.
    pub(super) fn comma_list(self) -> Result<Vec<String>, ConfigError> {
        let items = match self.raw {
            Raw::Text(text) | Raw::Toml(toml::Value::String(text)) => vec![text],
            _ => self.list()?,
        };
        Ok(items
            .iter()
            .flat_map(|item| item.split(','))
            .map(str::to_owned)
            .collect())
    }

    fn whole_number(&self) -> Result<u64, ConfigError> {
        match &self.raw {
            Raw::Text(text) => {
                parse_whole_number(text).map_err(|reason| self.invalid(text, reason))
            }
            Raw::Toml(toml::Value::Integer(number)) => u64::try_from(*number)
                .map_err(|_| self.invalid(&number.to_string(), "must not be negative")),
            _ => Err(self.mismatch("an integer")),
        }
    }

    /// A whole number that fits `T` (`usize` or `u32`).
    pub(super) fn count<T: TryFrom<u64>>(&self) -> Result<T, ConfigError> {
        let number = self.whole_number()?;
        T::try_from(number).map_err(|_| self.invalid(&number.to_string(), "is too large"))
    }

    pub(super) fn millis(&self) -> Result<Duration, ConfigError> {
        self.whole_number().map(Duration::from_millis)
    }

    pub(super) fn log_level(self) -> Result<LevelFilter, ConfigError> {
        let origin = self.origin;
        let setting = self.setting;
        let text = self.text()?;
        match text.to_ascii_lowercase().as_str() {
            "off" => Ok(LevelFilter::Off),
            "error" => Ok(LevelFilter::Error),
            "warn" => Ok(LevelFilter::Warn),
            "info" => Ok(LevelFilter::Info),
            "debug" => Ok(LevelFilter::Debug),
            "trace" => Ok(LevelFilter::Trace),
            _ => Err(ConfigError::InvalidValue {
                setting: setting.name(),
                reason: "expected one of off, error, warn, info, debug, trace".to_owned(),
                value: text,
                origin: Some(origin.clone()),
            }),
        }
    }

    /// One of the named `options` (any case).
    pub(super) fn one_of<T: Copy>(self, options: &[(&str, T)]) -> Result<T, ConfigError> {
        let origin = self.origin;
        let setting = self.setting;
        let text = self.text()?;
        let chosen = options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&text));
        match chosen {
            Some((_, value)) => Ok(*value),
            None => {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                Err(ConfigError::InvalidValue {
                    setting: setting.name(),
                    reason: format!("expected one of {}", names.join(", ")),
                    value: text,
                    origin: Some(origin.clone()),
                })
            }
        }
    }

    /// `auto`, `on` or `off`; in the file also `true` or `false`.
    pub(super) fn log_timestamps(self) -> Result<LogTimestamps, ConfigError> {
        if let Raw::Toml(toml::Value::Boolean(on)) = self.raw {
            return Ok(if on {
                LogTimestamps::On
            } else {
                LogTimestamps::Off
            });
        }
        self.one_of(&[
            ("auto", LogTimestamps::Auto),
            ("on", LogTimestamps::On),
            ("off", LogTimestamps::Off),
        ])
    }

    /// A list of addresses and CIDR blocks; each item may itself be a
    /// comma-separated list (`--trusted-proxy 10.0.0.1,10.0.0.2`).
    pub(super) fn ip_ranges(self) -> Result<Vec<IpRange>, ConfigError> {
        let setting = self.setting;
        let origin = self.origin;
        let mut ranges = Vec::new();
        for item in self.list()? {
            for part in item.split(',').map(str::trim) {
                let range = part.parse().map_err(|reason| ConfigError::InvalidValue {
                    setting: setting.name(),
                    value: part.to_owned(),
                    reason,
                    origin: Some(origin.clone()),
                })?;
                ranges.push(range);
            }
        }
        Ok(ranges)
    }

    fn invalid(&self, value: &str, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            setting: self.setting.name(),
            value: value.to_owned(),
            reason: reason.to_owned(),
            origin: Some(self.origin.clone()),
        }
    }

    /// The value has the wrong shape. From the file that is a TOML type
    /// error; from the command line it cannot happen (the splitter knows each
    /// flag's shape), but it gets a plain message rather than a panic.
    fn mismatch(&self, expected: &'static str) -> ConfigError {
        match &self.raw {
            Raw::Toml(value) => self.wrong_type(expected, type_name(value)),
            _ => self.invalid("", &format!("expected {expected}")),
        }
    }

    fn wrong_type(&self, expected: &'static str, found: &'static str) -> ConfigError {
        match self.origin {
            Origin::File { path } => ConfigError::WrongType {
                path: path.clone(),
                key: self.setting.name(),
                expected,
                found,
            },
            _ => self.invalid("", &format!("expected {expected}, found {found}")),
        }
    }
}

/// Parses a non-negative decimal integer, saying what is wrong if it is not.
fn parse_whole_number(text: &str) -> Result<u64, &'static str> {
    if text.starts_with('-') {
        return Err("must not be negative");
    }
    text.parse::<u64>().map_err(|error| match error.kind() {
        std::num::IntErrorKind::PosOverflow => "is too large",
        _ => "expected a whole number",
    })
}

/// A TOML value's type with its article, for messages.
fn type_name(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Like [`type_name`], for an item found inside an array.
fn in_array(item: &toml::Value) -> &'static str {
    match item {
        toml::Value::String(_) => "an array containing a string",
        toml::Value::Integer(_) => "an array containing an integer",
        toml::Value::Float(_) => "an array containing a float",
        toml::Value::Boolean(_) => "an array containing a boolean",
        toml::Value::Datetime(_) => "an array containing a datetime",
        toml::Value::Array(_) => "an array containing an array",
        toml::Value::Table(_) => "an array containing a table",
    }
}
