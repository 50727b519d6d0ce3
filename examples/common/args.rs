//! The examples' command-line parser: small, but as strict as the
//! `pumphub` binary's. `-h`/`--help` anywhere prints the help and exits 0;
//! an unknown flag, a flag without its value, a word that is no flag, a
//! repeated flag or a value that is not a number is an error (exit 2) with
//! one hint. Every flag takes a value, as `--name VALUE` or `--name=VALUE`.
//!
//! Each example includes this file with `#[path = "common/args.rs"] mod
//! args;`; it is not an example of its own (cargo builds only
//! `examples/*.rs` and `examples/*/main.rs`).

// Each example uses part of it.
#![allow(dead_code)]

use std::process::ExitCode;
use std::str::FromStr;

/// What an example accepts.
pub struct Spec {
    /// Its name, for messages: `subscriber`.
    pub program: &'static str,
    /// The whole `--help` text.
    pub help: &'static str,
    /// Its flags with their dashes, and whether each may repeat.
    pub flags: &'static [(&'static str, Repeat)],
}

/// Whether a flag may be given more than once.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    Once,
    Many,
}

/// The flags given, in order.
pub struct Args {
    program: &'static str,
    values: Vec<(&'static str, String)>,
}

impl Spec {
    /// Parse `std::env::args()`. `Err` carries the exit code after the
    /// help or an error was printed.
    pub fn parse(&self) -> Result<Args, ExitCode> {
        self.parse_from(std::env::args().skip(1))
    }

    fn parse_from(&self, words: impl IntoIterator<Item = String>) -> Result<Args, ExitCode> {
        let words: Vec<String> = words.into_iter().collect();
        if words.iter().any(|w| w == "-h" || w == "--help") {
            print!("{}", self.help);
            return Err(ExitCode::SUCCESS);
        }
        let mut values: Vec<(&'static str, String)> = Vec::new();
        let mut words = words.into_iter();
        while let Some(word) = words.next() {
            let (name, inline) = match word.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name.to_string(), Some(value)),
                _ => (word.clone(), None),
            };
            let Some(&(flag, repeat)) = self.flags.iter().find(|(flag, _)| *flag == name) else {
                return Err(if name.starts_with('-') {
                    match self.closest(&name) {
                        Some(flag) => {
                            self.fail(&format!("unknown flag `{name}` (did you mean `{flag}`?)"))
                        }
                        None => self.fail_with_hint(&format!("unknown flag `{name}`")),
                    }
                } else {
                    self.fail_with_hint(&format!("unexpected argument `{word}`"))
                });
            };
            let value = match inline {
                Some(value) => value.to_string(),
                None => match words.next() {
                    Some(value) if !value.starts_with("--") => value,
                    _ => return Err(self.fail(&format!("`{flag}` needs a value"))),
                },
            };
            if repeat == Repeat::Once && values.iter().any(|(f, _)| *f == flag) {
                return Err(self.fail(&format!("`{flag}` is given more than once")));
            }
            values.push((flag, value));
        }
        Ok(Args {
            program: self.program,
            values,
        })
    }

    /// The flag probably meant: at most two letters off, or one it begins
    /// (`--interval` for `--interval-ms`).
    fn closest(&self, name: &str) -> Option<&'static str> {
        self.flags
            .iter()
            .map(|(flag, _)| {
                let distance = match flag.starts_with(name) && name.len() > 3 {
                    true => 0,
                    false => edit_distance(flag, name),
                };
                (*flag, distance)
            })
            .filter(|(_, distance)| *distance <= 2)
            .min_by_key(|(_, distance)| *distance)
            .map(|(flag, _)| flag)
    }

    fn fail(&self, problem: &str) -> ExitCode {
        eprintln!("{}: {problem}", self.program);
        ExitCode::from(2)
    }

    fn fail_with_hint(&self, problem: &str) -> ExitCode {
        eprintln!("{}: {problem}", self.program);
        eprintln!("run `{} --help` for the options", self.program);
        ExitCode::from(2)
    }
}

impl Args {
    /// The value of `flag`, if given.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(f, _)| *f == flag)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a repeatable `flag`, in order.
    pub fn all<'a>(&'a self, flag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values
            .iter()
            .filter(move |(f, _)| *f == flag)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `flag` as a number, or `default` if not given; an error
    /// (printed, exit 2) if it is not one.
    pub fn number<T: FromStr>(&self, flag: &str, default: T) -> Result<T, ExitCode> {
        match self.get(flag) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| {
                eprintln!("{}: `{flag}` needs a number, got `{text}`", self.program);
                ExitCode::from(2)
            }),
        }
    }
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}
