//! Tests of the configuration as a whole: most go through
//! [`parse_args_with_env`] with a fake environment and temporary TOML files,
//! since layering, splitting, the file and validation meet there.
//!
//! Kept apart from `config.rs` because they are as long as the code; the
//! `--help` test sits next to `help_text` in `help.rs`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A TOML file under the temp dir with a name unique to this process and
/// test, removed on drop, so tests can run in parallel.
struct TempToml(PathBuf);

impl TempToml {
    fn new(contents: &str) -> TempToml {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pumphub-config-test-{}-{n}.toml", std::process::id());
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("write temp config");
        TempToml(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp dir path is UTF-8")
    }
}

impl Drop for TempToml {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

fn parse(args: &[&str]) -> Result<Invocation, ConfigError> {
    parse_args_with_env(strings(args), |_| None)
}

fn parse_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, ConfigError> {
    parse_args_with_env(strings(args), |name| {
        env.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| value.to_string())
    })
}

/// Parses arguments that must give `Invocation::Run`.
fn run(args: &[&str]) -> Config {
    match parse(args) {
        Ok(Invocation::Run(config)) => config,
        other => panic!("expected Run for {args:?}, got {other:?}"),
    }
}

/// Parses arguments that must fail, returning the error.
fn error(args: &[&str]) -> ConfigError {
    match parse(args) {
        Err(error) => error,
        Ok(other) => panic!("expected an error for {args:?}, got {other:?}"),
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn defaults_are_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.ws_addr, "127.0.0.1:9001");
    assert_eq!(config.http_addr, "127.0.0.1:9002");
    assert_eq!(config.max_connections, 10_000);
    assert_eq!(config.max_connections_per_ip, 1000);
    assert_eq!(config.max_message_size, 65_536);
    assert_eq!(config.ping_interval, ms(30_000));
    assert_eq!(config.pong_timeout, ms(10_000));
    assert_eq!(config.queue_size, 1024);
    assert_eq!(config.history_size, 1024);
    assert_eq!(config.rate_limit, 100);
    assert_eq!(config.token, None);
    assert_eq!(config.publish_key, None);
    assert!(!config.allow_client_publish);
    assert!(config.allowed_origins.is_empty());
    assert_eq!(config.stdin_channel, None);
    assert_eq!(config.log_level, LevelFilter::Info);
    assert_eq!(config.shutdown_grace, ms(5000));
    assert_eq!(config.max_subscriptions, 100);
    assert_eq!(config.handshake_timeout, ms(10_000));
    assert_eq!(config.auth_timeout, ms(10_000));
    assert_eq!(config.write_timeout, ms(5000));
    assert_eq!(config.http_workers, 4);
    assert_eq!(config.max_inflight, 128);
    assert!(config.validate().is_ok());
}

#[test]
fn no_arguments_give_the_defaults() {
    assert_eq!(run(&[]), Config::default());
}

#[test]
fn every_flag_is_parsed() {
    #[rustfmt::skip]
    let config = run(&[
        "--ws", "127.0.0.1:0",
        "--http", "127.0.0.1:1",
        "--max-connections", "7",
        "--max-connections-per-ip", "3",
        "--max-message-size", "512",
        "--ping-interval-ms", "0",
        "--pong-timeout-ms", "250",
        "--queue-size", "2",
        "--history-size", "0",
        "--rate-limit", "0",
        "--token", "s3cret",
        "--publish-key", "k3y",
        "--allow-client-publish",
        "--allowed-origin", "https://a.example",
        "--stdin", "feed",
        "--log-level", "debug",
        "--shutdown-grace-ms", "100",
        "--max-subscriptions", "5",
        "--handshake-timeout-ms", "300",
        "--auth-timeout-ms", "400",
        "--write-timeout-ms", "500",
        "--http-workers", "2",
        "--max-inflight", "16",
    ]);
    let expected = Config {
        ws_addr: "127.0.0.1:0".into(),
        http_addr: "127.0.0.1:1".into(),
        max_connections: 7,
        max_connections_per_ip: 3,
        max_message_size: 512,
        ping_interval: ms(0),
        pong_timeout: ms(250),
        queue_size: 2,
        history_size: 0,
        rate_limit: 0,
        token: Some("s3cret".into()),
        publish_key: Some("k3y".into()),
        allow_client_publish: true,
        allowed_origins: vec!["https://a.example".into()],
        stdin_channel: Some("feed".into()),
        log_level: LevelFilter::Debug,
        shutdown_grace: ms(100),
        max_subscriptions: 5,
        handshake_timeout: ms(300),
        auth_timeout: ms(400),
        write_timeout: ms(500),
        http_workers: 2,
        max_inflight: 16,
    };
    assert_eq!(config, expected);
}

#[test]
fn every_setting_works_with_the_equals_form() {
    let config = run(&[
        "--queue-size=9",
        "--ws=localhost:0",
        "--token=a=b",
        "--stdin=x.y",
    ]);
    assert_eq!(config.queue_size, 9);
    assert_eq!(config.ws_addr, "localhost:0");
    assert_eq!(
        config.token.as_deref(),
        Some("a=b"),
        "only the first `=` splits"
    );
    assert_eq!(config.stdin_channel.as_deref(), Some("x.y"));
    // A value starting with `--` is possible with `=`.
    assert_eq!(run(&["--token=--odd"]).token.as_deref(), Some("--odd"));
}

#[test]
fn log_levels_include_off_and_ignore_case() {
    assert_eq!(run(&["--log-level", "off"]).log_level, LevelFilter::Off);
    assert_eq!(run(&["--log-level", "TRACE"]).log_level, LevelFilter::Trace);
    assert!(matches!(
        error(&["--log-level", "loud"]),
        ConfigError::InvalidValue {
            setting: "log-level",
            ..
        }
    ));
}

#[test]
fn allowed_origin_repeats_and_is_lowercased() {
    #[rustfmt::skip]
    let config = run(&[
        "--allowed-origin", "https://A.example",
        "--allowed-origin=http://localhost:8080",
        "--allowed-origin", "http://[::1]:3000",
    ]);
    assert_eq!(
        config.allowed_origins,
        [
            "https://a.example",
            "http://localhost:8080",
            "http://[::1]:3000"
        ]
    );
}

#[test]
fn bad_origins_are_rejected() {
    for bad in [
        "a.example",
        "https://a.example/",
        "https://a.example/path",
        "https://",
        "https://a.example:99999",
        "https://a.example:",
        "https://user@a.example",
        "https://a b.example",
        "1http://a.example",
        "null",
    ] {
        match error(&["--allowed-origin", bad]) {
            ConfigError::InvalidValue {
                setting: "allowed-origin",
                value,
                origin: Some(Origin::CommandLine),
                ..
            } => assert_eq!(value, bad),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn file_values_apply() {
    let file = TempToml::new(
        "max-connections = 10\n\
         allowed-origin = [\"https://A.example\", \"https://b.example:8443\"]\n\
         allow-client-publish = true\n\
         ws = \"127.0.0.1:0\"\n\
         log-level = \"debug\"\n\
         stdin = \"feed\"\n\
         ping-interval-ms = 0\n",
    );
    let config = run(&["--config", file.path()]);
    assert_eq!(config.max_connections, 10);
    assert_eq!(
        config.allowed_origins,
        ["https://a.example", "https://b.example:8443"]
    );
    assert!(config.allow_client_publish);
    assert_eq!(config.ws_addr, "127.0.0.1:0");
    assert_eq!(config.log_level, LevelFilter::Debug);
    assert_eq!(config.stdin_channel.as_deref(), Some("feed"));
    assert_eq!(config.ping_interval, Duration::ZERO);
}

#[test]
fn flags_override_the_file_whatever_their_order() {
    let file = TempToml::new(
        "queue-size = 3\nhistory-size = 7\nallowed-origin = [\"https://f.example\"]\n",
    );
    let before = run(&[
        "--queue-size",
        "5",
        "--allowed-origin",
        "https://c.example",
        "--config",
        file.path(),
    ]);
    let after = run(&[
        "--config",
        file.path(),
        "--queue-size",
        "5",
        "--allowed-origin",
        "https://c.example",
    ]);
    for config in [before, after] {
        assert_eq!(config.queue_size, 5);
        assert_eq!(config.history_size, 7, "untouched file value stays");
        assert_eq!(
            config.allowed_origins,
            ["https://c.example"],
            "flags replace the list"
        );
    }
}

#[test]
fn a_flag_can_rescue_a_bad_file_value() {
    // Validation runs on the merged result, so the overridden 0 never counts.
    let file = TempToml::new("queue-size = 0\n");
    assert_eq!(
        run(&["--config", file.path(), "--queue-size", "4"]).queue_size,
        4
    );
}

#[test]
fn environment_sits_between_file_and_flags() {
    let file = TempToml::new("token = \"from-file\"\npublish-key = \"file-key\"\n");
    let env = [(ENV_TOKEN, "from-env"), (ENV_PUBLISH_KEY, "env-key")];

    let Ok(Invocation::Run(config)) = parse_with_env(&["--config", file.path()], &env) else {
        panic!("expected Run");
    };
    assert_eq!(config.token.as_deref(), Some("from-env"));
    assert_eq!(config.publish_key.as_deref(), Some("env-key"));

    let args = ["--config", file.path(), "--token", "from-flag"];
    let Ok(Invocation::Run(config)) = parse_with_env(&args, &env) else {
        panic!("expected Run");
    };
    assert_eq!(config.token.as_deref(), Some("from-flag"));
    assert_eq!(config.publish_key.as_deref(), Some("env-key"));
}

#[test]
fn rust_log_sets_the_level_unless_the_flag_does() {
    let file = TempToml::new("log-level = \"error\"\n");
    let level = |args: &[&str], env: &[(&str, &str)]| match parse_with_env(args, env) {
        Ok(Invocation::Run(config)) => config.log_level,
        other => panic!("{other:?}"),
    };
    let env = [(ENV_LOG, "Debug")];
    assert_eq!(level(&[], &env), LevelFilter::Debug);
    assert_eq!(level(&["--config", file.path()], &env), LevelFilter::Debug);
    assert_eq!(level(&["--log-level", "warn"], &env), LevelFilter::Warn);
    // Directives simple_logger cannot follow are ignored, not an error.
    let directive = [(ENV_LOG, "pumphub=debug")];
    assert_eq!(level(&[], &directive), LevelFilter::Info);
    assert_eq!(
        level(&["--config", file.path()], &directive),
        LevelFilter::Error
    );
    assert_eq!(level_from_rust_log(" trace "), Some(LevelFilter::Trace));
    assert_eq!(level_from_rust_log("info,pumphub=debug"), None);
}

#[test]
fn empty_secrets_are_rejected_and_name_their_source() {
    match parse_with_env(&[], &[(ENV_TOKEN, "")]) {
        Err(ConfigError::InvalidValue {
            setting: "token",
            origin: Some(Origin::Environment { var: ENV_TOKEN }),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let message = error(&["--publish-key="]).to_string();
    assert_eq!(
        message,
        "invalid value for --publish-key: must not be empty"
    );
    let message = error(&["--token", "has space"]).to_string();
    assert!(
        !message.contains("has space"),
        "secrets are never echoed: {message}"
    );
}

#[test]
fn unknown_flags_and_stray_words_are_rejected() {
    assert!(matches!(
        error(&["--bogus"]),
        ConfigError::UnknownFlag { flag, suggestion: None } if flag == "--bogus"
    ));
    assert!(matches!(
        error(&["--max_connections", "5"]),
        ConfigError::UnknownFlag {
            suggestion: Some("max-connections"),
            ..
        }
    ));
    assert!(matches!(error(&["-x"]), ConfigError::UnknownFlag { .. }));
    assert!(matches!(
        error(&["serve"]),
        ConfigError::UnexpectedArgument { arg } if arg == "serve"
    ));
    // A bare flag does not swallow the next word.
    assert!(matches!(
        error(&["--allow-client-publish", "true"]),
        ConfigError::UnexpectedArgument { .. }
    ));
    assert!(matches!(
        error(&["--allow-client-publish=yes"]),
        ConfigError::UnexpectedValue { .. }
    ));
}

#[test]
fn missing_values_are_reported() {
    assert!(matches!(
        error(&["--queue-size"]),
        ConfigError::MissingValue { flag } if flag == "--queue-size"
    ));
    // The next flag is not taken as the value.
    assert!(matches!(
        error(&["--stdin", "--queue-size", "4"]),
        ConfigError::MissingValue { flag } if flag == "--stdin"
    ));
}

#[test]
fn repeated_and_conflicting_flags_are_rejected() {
    assert!(matches!(
        error(&["--queue-size", "1", "--queue-size", "2"]),
        ConfigError::RepeatedFlag { flag } if flag == "--queue-size"
    ));
    assert!(matches!(
        error(&["--config", "a.toml", "--check-config", "b.toml"]),
        ConfigError::ConflictingFlags {
            first: "--config",
            second: "--check-config"
        }
    ));
}

#[test]
fn bad_numbers_are_rejected_with_the_flag_named() {
    let cases = [
        (&["--queue-size", "abc"][..], "expected a whole number"),
        (&["--queue-size", ""][..], "expected a whole number"),
        (&["--max-connections", "-5"][..], "must not be negative"),
        (&["--history-size", "1.5"][..], "expected a whole number"),
        (
            &["--ping-interval-ms", "99999999999999999999"][..],
            "is too large",
        ),
        (&["--rate-limit", "4294967296"][..], "is too large"),
    ];
    for (args, expected) in cases {
        match error(args) {
            ConfigError::InvalidValue {
                setting,
                reason,
                origin,
                ..
            } => {
                assert_eq!(format!("--{setting}"), args[0]);
                assert_eq!(reason, expected, "{args:?}");
                assert_eq!(origin, Some(Origin::CommandLine));
            }
            other => panic!("{args:?}: {other:?}"),
        }
    }
    assert_eq!(
        error(&["--queue-size", "abc"]).to_string(),
        "invalid value `abc` for --queue-size: expected a whole number"
    );
}

#[test]
fn edge_values_are_checked_on_the_merged_config() {
    for flag in [
        "--queue-size",
        "--max-message-size",
        "--max-connections",
        "--max-connections-per-ip",
        "--max-subscriptions",
        "--http-workers",
        "--write-timeout-ms",
        "--handshake-timeout-ms",
        "--auth-timeout-ms",
    ] {
        match error(&[flag, "0"]) {
            ConfigError::OutOfRange {
                setting,
                value: 0,
                min: 1,
                ..
            } => {
                assert_eq!(format!("--{setting}"), flag)
            }
            other => panic!("{flag}: {other:?}"),
        }
    }
    assert_eq!(
        error(&["--queue-size", "0"]).to_string(),
        "--queue-size is out of range: must be at least 1, got 0"
    );
    // From the file, the error names the key and the file.
    let file = TempToml::new("max-message-size = 0\n");
    match error(&["--config", file.path()]) {
        ConfigError::OutOfRange {
            setting: "max-message-size",
            origin: Some(Origin::File { path }),
            ..
        } => assert_eq!(path, file.0),
        other => panic!("{other:?}"),
    }
    // Zero is meaningful for these.
    let config = run(&[
        "--history-size",
        "0",
        "--rate-limit",
        "0",
        "--ping-interval-ms",
        "0",
    ]);
    assert_eq!((config.history_size, config.rate_limit), (0, 0));
    assert!(matches!(
        error(&["--shutdown-grace-ms", "86400001"]),
        ConfigError::OutOfRange {
            max: MAX_MILLIS,
            ..
        }
    ));
}

#[test]
fn addresses_must_be_host_and_port() {
    for bad in ["9001", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", ""] {
        assert!(
            matches!(
                error(&["--ws", bad]),
                ConfigError::InvalidValue { setting: "ws", .. }
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        error(&["--http", "nope"]),
        ConfigError::InvalidValue {
            setting: "http",
            ..
        }
    ));
    assert_eq!(run(&["--http", "[::1]:0"]).http_addr, "[::1]:0");
}

#[test]
fn stdin_channel_must_be_a_valid_name() {
    let long = "a".repeat(129);
    for bad in ["", "has space", "é", "a/b", long.as_str()] {
        assert!(
            matches!(
                error(&["--stdin", bad]),
                ConfigError::InvalidValue {
                    setting: "stdin",
                    ..
                }
            ),
            "{bad:?}"
        );
    }
    let ok = "A-z_0.9:x".to_owned() + &"a".repeat(119);
    assert_eq!(run(&["--stdin", &ok]).stdin_channel, Some(ok));
}

#[test]
fn unknown_and_flag_only_keys_are_rejected_in_the_file() {
    let file = TempToml::new("max_connections = 10\n");
    match error(&["--config", file.path()]) {
        ConfigError::UnknownKey {
            key, suggestion, ..
        } => {
            assert_eq!(key, "max_connections");
            assert_eq!(suggestion, Some("max-connections"));
        }
        other => panic!("{other:?}"),
    }
    let file = TempToml::new("[limits]\nqueue-size = 1\n");
    assert!(matches!(
        error(&["--config", file.path()]),
        ConfigError::UnknownKey { key, .. } if key == "limits"
    ));
    for key in ["config", "check-config"] {
        let file = TempToml::new(&format!("{key} = \"other.toml\"\n"));
        assert!(matches!(
            error(&["--config", file.path()]),
            ConfigError::KeyNotAllowed { .. }
        ));
    }
}

#[test]
fn wrong_toml_types_are_rejected() {
    let cases = [
        ("queue-size = \"10\"", "an integer", "a string"),
        ("queue-size = 1.5", "an integer", "a float"),
        (
            "allow-client-publish = \"yes\"",
            "true or false",
            "a string",
        ),
        ("ws = 9001", "a string", "an integer"),
        (
            "allowed-origin = \"https://a.example\"",
            "an array of strings",
            "a string",
        ),
        (
            "allowed-origin = [1]",
            "an array of strings",
            "an array containing an integer",
        ),
    ];
    for (line, expected_type, found_type) in cases {
        let file = TempToml::new(line);
        match error(&["--config", file.path()]) {
            ConfigError::WrongType {
                expected, found, ..
            } => {
                assert_eq!((expected, found), (expected_type, found_type), "{line}")
            }
            other => panic!("{line}: {other:?}"),
        }
    }
    let file = TempToml::new("queue-size = \"10\"");
    let message = error(&["--config", file.path()]).to_string();
    assert!(message.ends_with("must be an integer, found a string (write numbers without quotes)"));
}

#[test]
fn negative_toml_integers_are_rejected() {
    let file = TempToml::new("history-size = -1\n");
    assert!(matches!(
        error(&["--config", file.path()]),
        ConfigError::InvalidValue { setting: "history-size", reason, .. } if reason == "must not be negative"
    ));
}

#[test]
fn toml_syntax_errors_give_a_position() {
    let file = TempToml::new("queue-size = 1\nws = \n");
    match error(&["--config", file.path()]) {
        ConfigError::Toml { line, .. } => assert_eq!(line, Some(2)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_file_keeps_the_io_error_as_source() {
    let path = std::env::temp_dir().join(format!("pumphub-missing-{}.toml", std::process::id()));
    let path = path.to_str().expect("UTF-8 temp path");
    let error = error(&["--config", path]);
    assert!(matches!(error, ConfigError::ReadFile { .. }));
    let source = std::error::Error::source(&error).expect("io error as source");
    assert!(source.downcast_ref::<io::Error>().is_some());
    assert!(
        !error.to_string().contains(&source.to_string()),
        "cause is not repeated"
    );
}

#[test]
fn check_config_validates_the_file_and_the_flags() {
    let file = TempToml::new("queue-size = 3\n");
    match parse(&["--check-config", file.path(), "--history-size", "2"]) {
        Ok(Invocation::CheckConfig { path, config }) => {
            assert_eq!(path, file.0);
            assert_eq!((config.queue_size, config.history_size), (3, 2));
        }
        other => panic!("{other:?}"),
    }
    let bad = TempToml::new("queue-size = 0\n");
    assert!(matches!(
        error(&["--check-config", bad.path()]),
        ConfigError::OutOfRange { .. }
    ));
}

#[test]
fn help_and_version_win_over_bad_flags() {
    assert_eq!(parse(&["-h"]).ok(), Some(Invocation::Help));
    assert_eq!(parse(&["--version"]).ok(), Some(Invocation::Version));
    assert_eq!(
        parse(&["--bogus", "--queue-size", "x", "-V"]).ok(),
        Some(Invocation::Version)
    );
    assert_eq!(
        parse(&["--config", "/nonexistent.toml", "--help"]).ok(),
        Some(Invocation::Help)
    );
    // A flag expecting a value does not swallow --help.
    assert_eq!(parse(&["--token", "--help"]).ok(), Some(Invocation::Help));
    assert_eq!(
        parse(&["--help", "-V"]).ok(),
        Some(Invocation::Help),
        "first one wins"
    );
}

#[test]
fn debug_output_hides_secrets() {
    let config = Config {
        token: Some("s3cret".into()),
        publish_key: Some("k3y".into()),
        ..Config::default()
    };
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("k3y"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"));
}

#[test]
fn validate_catches_bad_values_set_in_code() {
    let config = Config {
        queue_size: 0,
        ..Config::default()
    };
    match config.validate() {
        Err(error @ ConfigError::OutOfRange { origin: None, .. }) => {
            assert_eq!(
                error.to_string(),
                "`queue-size` is out of range: must be at least 1, got 0"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn error_messages_are_lowercase_without_a_trailing_period() {
    let file = TempToml::new("bogus = 1\n");
    let errors = [
        error(&["--bogus"]),
        error(&["stray"]),
        error(&["--queue-size"]),
        error(&["--queue-size", "0"]),
        error(&["--config", file.path()]),
    ];
    for error in errors {
        let message = error.to_string();
        let first = message.chars().next().expect("non-empty message");
        assert!(
            !first.is_uppercase() && !message.ends_with('.'),
            "{message}"
        );
    }
}
