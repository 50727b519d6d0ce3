//! The binary's logger: one line per record on stderr, as text
//! (`LEVEL [module] message`) or JSON, with or without a UTC timestamp
//! (`--log-format`, `--log-timestamps`).
//!
//! Part of the `pumphub` binary, not of the library: an embedding
//! application chooses its own logger. `main` installs it once, before the
//! hub starts; after that every thread that logs (connection threads, the
//! broadcaster, HTTP workers) formats its line here and writes it with one
//! `write_all` on the locked stderr, so lines from different threads never
//! interleave. Nothing is buffered and nothing is sent anywhere else.
//!
//! Written here rather than taken from a crate because it is small: a
//! timestamp is a few lines of calendar arithmetic, and JSON strings are
//! escaped by serde_json, which the hub already has.

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};
use pumphub::config::LogFormat;

/// How lines look; fixed at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub format: LogFormat,
    pub timestamps: bool,
}

impl Style {
    /// One complete line, newline included.
    pub fn line(self, level: Level, target: &str, message: fmt::Arguments<'_>) -> String {
        let timestamp = self.timestamps.then(|| utc_timestamp(SystemTime::now()));
        match self.format {
            LogFormat::Json => {
                let text = |s: &str| serde_json::Value::from(s).to_string();
                let ts = match &timestamp {
                    Some(ts) => format!("\"ts\":\"{ts}\","),
                    None => String::new(),
                };
                format!(
                    "{{{ts}\"level\":\"{level}\",\"target\":{},\"message\":{}}}\n",
                    text(target),
                    text(&message.to_string())
                )
            }
            // Text, and any format added later.
            _ => match &timestamp {
                Some(ts) => format!("{ts} {level:<5} [{target}] {message}\n"),
                None => format!("{level:<5} [{target}] {message}\n"),
            },
        }
    }

    /// Print `message` whatever the level: the `listening` line, which
    /// scripts wait for. As text it stays bare (after the timestamp, if
    /// any), as it always was; as JSON it is an `INFO` object like the rest.
    pub fn announce(self, message: fmt::Arguments<'_>) {
        let line = match (self.format, self.timestamps) {
            (LogFormat::Json, _) => self.line(Level::Info, "pumphub", message),
            (_, true) => format!("{} {message}\n", utc_timestamp(SystemTime::now())),
            (_, false) => format!("{message}\n"),
        };
        write_line(&line);
    }
}

/// The logger `main` installs.
pub struct Logger {
    level: LevelFilter,
    style: Style,
}

impl Logger {
    pub fn new(level: LevelFilter, style: Style) -> Logger {
        Logger { level, style }
    }

    /// Make this the process's logger. It lives until the process ends.
    pub fn install(self) {
        let level = self.level;
        if log::set_logger(Box::leak(Box::new(self))).is_ok() {
            log::set_max_level(level);
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // tiny_http's own debug lines stay hidden below `trace`: one of
        // them says "Server listening on …", and scripts wait for the first
        // line containing `listening` to read both addresses from it.
        let level = if metadata.target().starts_with("tiny_http") && self.level < LevelFilter::Trace
        {
            self.level.min(LevelFilter::Info)
        } else {
            self.level
        };
        metadata.level() <= level
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = self
                .style
                .line(record.level(), record.target(), *record.args());
            write_line(&line);
        }
    }

    fn flush(&self) {}
}

/// One whole line in one write; a closed stderr is not worth a panic.
fn write_line(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// `2026-12-07T22:48:39.123Z`: RFC 3339, UTC, milliseconds. UTC because
/// the local offset cannot be read safely from a multi-threaded process,
/// and logs from several machines then sort as they are.
fn utc_timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let second_of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60,
        since.subsec_millis()
    )
}

/// Year, month and day of the `days`-th day after 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for dates from 1970 on).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64, millis: u64) -> String {
        utc_timestamp(UNIX_EPOCH + Duration::from_millis(seconds * 1000 + millis))
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.007Z");
        assert_eq!(at(1_709_208_000, 0), "2024-02-29T12:00:00.000Z");
        assert_eq!(at(1_796_683_699, 123), "2026-12-07T22:48:19.123Z");
        assert_eq!(at(4_102_444_799, 999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn lines_as_text_and_json() {
        let text = Style {
            format: LogFormat::Text,
            timestamps: false,
        };
        assert_eq!(
            text.line(Level::Warn, "pumphub::hub", format_args!("full")),
            "WARN  [pumphub::hub] full\n"
        );
        let json = Style {
            format: LogFormat::Json,
            timestamps: false,
        };
        let line = json.line(
            Level::Info,
            "pumphub::ws",
            format_args!("a \"quoted\"\nline"),
        );
        assert_eq!(
            line,
            "{\"level\":\"INFO\",\"target\":\"pumphub::ws\",\"message\":\"a \\\"quoted\\\"\\nline\"}\n"
        );
        let stamped = Style {
            format: LogFormat::Json,
            timestamps: true,
        }
        .line(Level::Error, "x", format_args!("y"));
        let value: serde_json::Value = serde_json::from_str(&stamped).unwrap();
        assert!(value["ts"].as_str().unwrap().ends_with('Z'), "{stamped}");
    }
}
