//! The command line: [`parse_args`], which layers the sources in order, and
//! the splitter that turns the words into flags.
//!
//! Part of the configuration (see `config.rs`). This is the entry point: it
//! reads the command line, asks `file.rs` for the config file and `env` for
//! the environment, sets each value on a [`Config`], and validates the merged
//! result once. Flags are split without judging their values, so that a
//! `--help` anywhere still wins over a bad value.

use std::collections::HashMap;
use std::iter::Peekable;
use std::path::PathBuf;

use super::file::read_config_file;
use super::input::Raw;
use super::setting::{suggest, Setting};
use super::{level_from_rust_log, Config, ConfigError, Invocation, Origin, ENV_CONFIG, ENV_LOG};

/// Parses the command line (without `argv[0]`), the environment and any
/// config file into an [`Invocation`]. See the [module docs](super) for
/// which source wins.
///
/// `-h`/`--help` and `-V`/`--version` win wherever they appear, even next to
/// an unknown flag or a bad value, and no file is read; if both are given, the
/// first wins. Otherwise the first problem found is returned.
///
/// A non-UTF-8 secret variable is read lossily, and so is rejected by
/// validation (a secret must be printable ASCII) instead of being ignored.
///
/// # Errors
///
/// Any [`ConfigError`]: a bad flag, an unreadable or invalid file, or a value
/// that fails validation.
///
/// See [`parse_args_with_env`] for an example that does not depend on the
/// real environment.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Invocation, ConfigError> {
    parse_args_with_env(args, |name| {
        std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
    })
}

/// [`parse_args`] with the environment given as a function, for tests and
/// for embedding applications that keep their own environment.
///
/// `env` is asked for `PUMPHUB_<SETTING>` for every setting
/// ([`env_var_names`](super::env_var_names)), [`ENV_CONFIG`] and
/// [`ENV_LOG`].
///
/// # Errors
///
/// As [`parse_args`].
///
/// # Examples
///
/// ```
/// use pumphub::config::{parse_args_with_env, Invocation};
///
/// let args = ["--queue-size", "8", "--ws=127.0.0.1:0"].map(String::from);
/// let env = |name: &str| (name == "PUMPHUB_TOKEN").then(|| "s3cret".to_owned());
/// let Invocation::Run(config) = parse_args_with_env(args, env)? else {
///     unreachable!("no --help, --version or --check-config was given");
/// };
/// assert_eq!(config.queue_size, 8);
/// assert_eq!(config.token.as_deref(), Some("s3cret"));
/// # Ok::<(), pumphub::config::ConfigError>(())
/// ```
pub fn parse_args_with_env<I, E>(args: I, env: E) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    // 1. Split the command line into flags; values are not judged yet, so
    //    that --help can win over a bad value.
    let command_line = match split_command_line(args)? {
        Split::Help => return Ok(Invocation::Help),
        Split::Version => return Ok(Invocation::Version),
        Split::Flags(command_line) => command_line,
    };

    // 2. Layer the sources, lowest precedence first, remembering where each
    //    setting was last set.
    let mut config = Config::default();
    let mut origins = HashMap::new();
    // `--config` or `--check-config`, else PUMPHUB_CONFIG.
    let file = command_line
        .file
        .as_ref()
        .map(|(_, path)| path.clone())
        .or_else(|| env(ENV_CONFIG).map(PathBuf::from));
    if let Some(path) = &file {
        let origin = Origin::File { path: path.clone() };
        for (setting, raw) in read_config_file(path)? {
            config.set(setting, raw, &origin)?;
            origins.insert(setting, origin.clone());
        }
    }
    // RUST_LOG first, so that PUMPHUB_LOG_LEVEL, the more specific, wins.
    if let Some(level) = env(ENV_LOG).as_deref().and_then(level_from_rust_log) {
        config.log_level = level;
        origins.insert(Setting::LogLevel, Origin::Environment { var: ENV_LOG });
    }
    for setting in Setting::ALL {
        let var = setting.env_var();
        if let Some(value) = env(var) {
            let origin = Origin::Environment { var };
            config.set(setting, Raw::Text(value), &origin)?;
            origins.insert(setting, origin);
        }
    }
    for (setting, raw) in command_line.settings {
        config.set(setting, raw, &Origin::CommandLine)?;
        origins.insert(setting, Origin::CommandLine);
    }

    // 3. Validate the merged result.
    config.check(&origins)?;

    Ok(match command_line.file {
        Some((FileRole::Check, path)) => Invocation::CheckConfig { path, config },
        _ => Invocation::Run(config),
    })
}

/// Which of the two file flags named the config file.
enum FileRole {
    /// `--config FILE`: load it, then run.
    Load,
    /// `--check-config FILE`: load it, validate, then exit.
    Check,
}

/// The command line split into flags, each setting at most once.
struct CommandLine {
    file: Option<(FileRole, PathBuf)>,
    settings: Vec<(Setting, Raw)>,
}

impl CommandLine {
    /// Records one setting flag, refusing repeats except of the repeatable
    /// ones (`--allowed-origin`, `--token-secret`).
    fn add(&mut self, setting: Setting, value: Option<String>) -> Result<(), ConfigError> {
        let existing = self.settings.iter_mut().find(|(s, _)| *s == setting);
        match (existing, value) {
            (Some((_, Raw::Texts(values))), Some(value)) => values.push(value),
            (Some(_), _) => {
                return Err(ConfigError::RepeatedFlag {
                    flag: format!("--{}", setting.name()),
                })
            }
            (None, Some(value)) if setting.repeatable() => {
                self.settings.push((setting, Raw::Texts(vec![value])));
            }
            (None, Some(value)) => self.settings.push((setting, Raw::Text(value))),
            (None, None) => self.settings.push((setting, Raw::Switch)),
        }
        Ok(())
    }

    fn set_file(&mut self, role: FileRole, path: PathBuf) -> Result<(), ConfigError> {
        let flag = |role: &FileRole| match role {
            FileRole::Load => "--config",
            FileRole::Check => "--check-config",
        };
        match &self.file {
            None => {
                self.file = Some((role, path));
                Ok(())
            }
            Some((earlier, _)) if flag(earlier) == flag(&role) => Err(ConfigError::RepeatedFlag {
                flag: flag(&role).to_owned(),
            }),
            Some((earlier, _)) => Err(ConfigError::ConflictingFlags {
                first: flag(earlier),
                second: flag(&role),
            }),
        }
    }
}

/// What [`split_command_line`] found.
enum Split {
    /// `--help`: nothing else matters.
    Help,
    /// `--version`: nothing else matters.
    Version,
    /// Settings to layer over the file and environment.
    Flags(CommandLine),
}

/// One command-line word (with its value, if it takes one).
enum Word {
    Help,
    Version,
    File(FileRole, PathBuf),
    Setting(Setting, Option<String>),
}

/// Splits the command line into flags without judging their values.
///
/// Keeps going after an error, so that a `--help` later on still wins; then
/// returns the first error.
fn split_command_line<I: IntoIterator<Item = String>>(args: I) -> Result<Split, ConfigError> {
    let mut args = args.into_iter().peekable();
    let mut exit = None;
    let mut first_error = None;
    let mut command_line = CommandLine {
        file: None,
        settings: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let recorded = match read_word(arg, &mut args) {
            Ok(Word::Help) => {
                exit.get_or_insert(Split::Help);
                Ok(())
            }
            Ok(Word::Version) => {
                exit.get_or_insert(Split::Version);
                Ok(())
            }
            Ok(Word::File(role, path)) => command_line.set_file(role, path),
            Ok(Word::Setting(setting, value)) => command_line.add(setting, value),
            Err(error) => Err(error),
        };
        if let Err(error) = recorded {
            first_error.get_or_insert(error);
        }
    }
    match (exit, first_error) {
        (Some(help_or_version), _) => Ok(help_or_version),
        (None, Some(error)) => Err(error),
        (None, None) => Ok(Split::Flags(command_line)),
    }
}

/// Reads one word, taking the next one as its value when the flag needs one
/// and was not written `--flag=VALUE`.
fn read_word<I>(arg: String, rest: &mut Peekable<I>) -> Result<Word, ConfigError>
where
    I: Iterator<Item = String>,
{
    match arg.as_str() {
        "-h" => return Ok(Word::Help),
        "-V" => return Ok(Word::Version),
        _ => {}
    }
    let Some(body) = arg.strip_prefix("--") else {
        return Err(if arg.starts_with('-') && arg.len() > 1 {
            ConfigError::UnknownFlag {
                flag: arg,
                suggestion: None,
            }
        } else {
            ConfigError::UnexpectedArgument { arg }
        });
    };
    let (name, inline_value) = match body.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (body, None),
    };
    let flag = format!("--{name}");

    // Bare flags first: they must not have `=VALUE`.
    let bare = match name {
        "help" => Some(Word::Help),
        "version" => Some(Word::Version),
        _ => Setting::from_name(name)
            .filter(|setting| !setting.takes_value())
            .map(|setting| Word::Setting(setting, None)),
    };
    if let Some(word) = bare {
        return match inline_value {
            Some(value) => Err(ConfigError::UnexpectedValue { flag, value }),
            None => Ok(word),
        };
    }

    // Every other flag takes a value: the text after `=`, or else the next
    // word, unless that word is itself a flag: `--token --help` is a missing
    // token, not the token "--help".
    let value = || match inline_value {
        Some(value) => Ok(value),
        None => rest
            .next_if(|next| !next.starts_with("--"))
            .ok_or_else(|| ConfigError::MissingValue { flag: flag.clone() }),
    };
    match name {
        "config" => Ok(Word::File(FileRole::Load, value()?.into())),
        "check-config" => Ok(Word::File(FileRole::Check, value()?.into())),
        _ => match Setting::from_name(name) {
            Some(setting) => Ok(Word::Setting(setting, Some(value()?))),
            None => Err(ConfigError::UnknownFlag {
                suggestion: suggest(name),
                flag,
            }),
        },
    }
}
