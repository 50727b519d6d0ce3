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
    assert_eq!(config.ws_addr.as_deref(), Some("127.0.0.1:9001"));
    assert_eq!(config.http_addr.as_deref(), Some("127.0.0.1:9002"));
    // 10000, or what the machine holds if less: never over the ceiling,
    // so a stock machine starts without a warning.
    let fits = match super::os_connection_ceiling() {
        Some((ceiling, _)) => ceiling.clamp(1, 10_000),
        None => 10_000,
    };
    assert_eq!(config.max_connections, fits);
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

/// Every setting with a value that is not its default: (flag name, value).
/// `None` is a bare switch, `--allow-client-publish` or
/// `--token-allow-no-exp` (`true` in the environment).
#[rustfmt::skip]
const EVERY_SETTING: &[(&str, Option<&str>)] = &[
    ("ws", Some("127.0.0.1:0")),
    ("http", Some("127.0.0.1:1")),
    ("max-connections", Some("7")),
    ("max-connections-per-ip", Some("3")),
    ("max-handshakes-per-ip", Some("8")),
    ("http-max-connections-per-ip", Some("9")),
    ("max-message-size", Some("512")),
    ("ping-interval-ms", Some("0")),
    ("pong-timeout-ms", Some("250")),
    ("queue-size", Some("2")),
    ("queue-bytes", Some("70000")),
    ("history-size", Some("0")),
    ("history-bytes", Some("2000000")),
    ("max-channels", Some("6")),
    ("channel-idle-ms", Some("0")),
    ("rate-limit", Some("0")),
    ("token", Some("s3cret")),
    ("token-secret", Some(SECRET_A)),
    ("token-allow-no-exp", None),
    ("publish-key", Some("k3y")),
    ("allow-client-publish", None),
    ("allowed-origin", Some("https://a.example")),
    ("trusted-proxy", Some("127.0.0.1,10.0.0.0/8")),
    ("stdin", Some("feed")),
    ("log-level", Some("debug")),
    ("log-format", Some("json")),
    ("log-timestamps", Some("off")),
    ("shutdown-grace-ms", Some("100")),
    ("max-subscriptions", Some("5")),
    ("handshake-timeout-ms", Some("300")),
    ("auth-timeout-ms", Some("400")),
    ("write-timeout-ms", Some("500")),
    ("http-workers", Some("2")),
    ("max-inflight", Some("16")),
    ("redis", Some("redis://127.0.0.1:1/2")),
    ("redis-prefix", Some("hub-a")),
];

/// The config [`EVERY_SETTING`] gives, from any source.
fn every_setting_expected() -> Config {
    Config {
        ws_addr: Some("127.0.0.1:0".into()),
        http_addr: Some("127.0.0.1:1".into()),
        max_connections: 7,
        max_connections_per_ip: 3,
        max_handshakes_per_ip: 8,
        http_max_connections_per_ip: 9,
        max_message_size: 512,
        ping_interval: ms(0),
        pong_timeout: ms(250),
        queue_size: 2,
        queue_bytes: 70_000,
        history_size: 0,
        history_bytes: 2_000_000,
        max_channels: 6,
        channel_idle: ms(0),
        rate_limit: 0,
        token: Some("s3cret".into()),
        token_secrets: vec![SECRET_A.into()],
        token_allow_no_exp: true,
        publish_key: Some("k3y".into()),
        allow_client_publish: true,
        allowed_origins: vec!["https://a.example".into()],
        trusted_proxies: vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
        stdin_channel: Some("feed".into()),
        log_level: LevelFilter::Debug,
        log_format: LogFormat::Json,
        log_timestamps: LogTimestamps::Off,
        shutdown_grace: ms(100),
        max_subscriptions: 5,
        handshake_timeout: ms(300),
        auth_timeout: ms(400),
        write_timeout: ms(500),
        http_workers: 2,
        max_inflight: 16,
        redis: Some("redis://127.0.0.1:1/2".into()),
        redis_prefix: "hub-a".into(),
    }
}

#[test]
fn every_flag_is_parsed() {
    assert_eq!(
        EVERY_SETTING.len(),
        Setting::ALL.len(),
        "a setting is missing here"
    );
    let mut args = Vec::new();
    for (name, value) in EVERY_SETTING {
        args.push(format!("--{name}"));
        args.extend(value.map(String::from));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(run(&args), every_setting_expected());
}

#[test]
fn every_setting_can_come_from_the_environment() {
    let env: Vec<(String, &str)> = EVERY_SETTING
        .iter()
        .map(|(name, value)| {
            let var = format!("PUMPHUB_{}", name.to_ascii_uppercase().replace('-', "_"));
            (var, value.unwrap_or("true"))
        })
        .collect();
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(var, value)| (var.as_str(), *value))
        .collect();
    match parse_with_env(&[], &env) {
        Ok(Invocation::Run(config)) => assert_eq!(config, every_setting_expected()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let file = TempToml::new("queue-size = 5\nhistory-size = 6\nrate-limit = 7\n");
    let env = [
        ("PUMPHUB_HISTORY_SIZE", "60"),
        ("PUMPHUB_RATE_LIMIT", "70"),
        ("PUMPHUB_CONFIG", file.path()),
    ];
    // No --config: PUMPHUB_CONFIG names the file.
    let Ok(Invocation::Run(config)) = parse_with_env(&["--rate-limit", "700"], &env) else {
        panic!("expected Run");
    };
    assert_eq!(config.queue_size, 5, "file");
    assert_eq!(config.history_size, 60, "environment over file");
    assert_eq!(config.rate_limit, 700, "flag over environment");
    // --config wins over PUMPHUB_CONFIG.
    let other = TempToml::new("queue-size = 9\n");
    let Ok(Invocation::Run(config)) = parse_with_env(&["--config", other.path()], &env) else {
        panic!("expected Run");
    };
    assert_eq!(config.queue_size, 9);
    assert_eq!(config.rate_limit, 70);
}

#[test]
fn environment_values_are_checked_and_name_their_variable() {
    let cases = [
        (
            "PUMPHUB_QUEUE_SIZE",
            "lots",
            "environment variable PUMPHUB_QUEUE_SIZE",
        ),
        (
            "PUMPHUB_QUEUE_SIZE",
            "0",
            "environment variable PUMPHUB_QUEUE_SIZE is out of range",
        ),
        (
            "PUMPHUB_ALLOW_CLIENT_PUBLISH",
            "maybe",
            "expected true or false",
        ),
        (
            "PUMPHUB_TRUSTED_PROXY",
            "10.0.0.0/99",
            "the prefix length must be 0 to 32",
        ),
        ("PUMPHUB_LOG_FORMAT", "xml", "expected one of text, json"),
        (
            "PUMPHUB_LOG_TIMESTAMPS",
            "sometimes",
            "expected one of auto, on, off",
        ),
    ];
    for (var, value, needle) in cases {
        match parse_with_env(&[], &[(var, value)]) {
            Err(error) => assert!(error.to_string().contains(needle), "{var}={value}: {error}"),
            Ok(other) => panic!("{var}={value} was accepted: {other:?}"),
        }
    }
    // A flag can rescue a bad variable, as it can a bad file value.
    let rescued = parse_with_env(&["--queue-size", "3"], &[("PUMPHUB_QUEUE_SIZE", "0")]);
    assert!(matches!(rescued, Ok(Invocation::Run(c)) if c.queue_size == 3));
    // Lists: comma-separated in one variable.
    let env = [(
        "PUMPHUB_ALLOWED_ORIGIN",
        "https://a.example, https://B.example",
    )];
    let Ok(Invocation::Run(config)) = parse_with_env(&[], &env) else {
        panic!("expected Run");
    };
    assert_eq!(
        config.allowed_origins,
        ["https://a.example", "https://b.example"]
    );
    assert!(env_var_names().any(|name| name == "PUMPHUB_MAX_CONNECTIONS"));
    assert!(env_var_names().any(|name| name == "PUMPHUB_CONFIG"));
}

#[test]
fn pumphub_log_level_beats_rust_log() {
    let env = [("RUST_LOG", "debug"), ("PUMPHUB_LOG_LEVEL", "warn")];
    let Ok(Invocation::Run(config)) = parse_with_env(&[], &env) else {
        panic!("expected Run");
    };
    assert_eq!(config.log_level, LevelFilter::Warn);
}

#[test]
fn log_timestamps_follow_systemd_when_auto() {
    let none = |_: &str| None;
    let journal = |name: &str| (name == "JOURNAL_STREAM").then(|| "8:1234".to_owned());
    let unit = |name: &str| (name == "INVOCATION_ID").then(|| "abc".to_owned());
    assert!(LogTimestamps::Auto.resolve(none));
    assert!(!LogTimestamps::Auto.resolve(journal));
    assert!(!LogTimestamps::Auto.resolve(unit));
    assert!(LogTimestamps::On.resolve(journal));
    assert!(!LogTimestamps::Off.resolve(none));
    let file = TempToml::new("log-timestamps = true\n");
    assert_eq!(
        run(&["--config", file.path()]).log_timestamps,
        LogTimestamps::On
    );
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
    assert_eq!(config.ws_addr.as_deref(), Some("localhost:0"));
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
    assert_eq!(config.ws_addr.as_deref(), Some("127.0.0.1:0"));
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

const SECRET_A: &str = "0123456789abcdef0123456789abcdef-a";
const SECRET_B: &str = "0123456789abcdef0123456789abcdef-b";
const SECRET_C: &str = "0123456789abcdef0123456789abcdef-c";

#[test]
fn token_secrets_come_from_every_source_as_lists() {
    // Repeated flags, each possibly a comma list, in order.
    let both = format!("{SECRET_B},{SECRET_C}");
    let config = run(&["--token-secret", SECRET_A, "--token-secret", &both]);
    assert_eq!(config.token_secrets, [SECRET_A, SECRET_B, SECRET_C]);
    assert!(!config.token_allow_no_exp);

    // The environment takes a comma list and sits below the flags.
    let env = format!("{SECRET_A},{SECRET_B}");
    let from_env = |args: &[&str]| match parse_with_env(args, &[(ENV_TOKEN_SECRET, &env)]) {
        Ok(Invocation::Run(config)) => config.token_secrets,
        other => panic!("{other:?}"),
    };
    assert_eq!(from_env(&[]), [SECRET_A, SECRET_B]);
    assert_eq!(from_env(&["--token-secret", SECRET_C]), [SECRET_C]);

    // The file takes a string (also a comma list) or an array.
    let file = TempToml::new(&format!(
        "token-secret = [\"{SECRET_A}\", \"{SECRET_B}\"]\ntoken-allow-no-exp = true\n"
    ));
    let config = run(&["--config", file.path()]);
    assert_eq!(config.token_secrets, [SECRET_A, SECRET_B]);
    assert!(config.token_allow_no_exp);
    let file = TempToml::new(&format!("token-secret = \"{SECRET_C},{SECRET_A}\"\n"));
    assert_eq!(
        run(&["--config", file.path()]).token_secrets,
        [SECRET_C, SECRET_A]
    );
    let file = TempToml::new("token-secret = 5\n");
    assert!(matches!(
        error(&["--config", file.path()]),
        ConfigError::WrongType {
            key: "token-secret",
            ..
        }
    ));
    assert!(matches!(
        error(&["--token-allow-no-exp=yes"]),
        ConfigError::UnexpectedValue { .. }
    ));
}

#[test]
fn token_secrets_are_validated_without_being_echoed() {
    let short = "0123456789abcdef0123456789abcde"; // 31 bytes
    let spaced = "0123456789abcdef 0123456789abcdef";
    let stray_comma = format!("{SECRET_A},");
    let nine = [SECRET_A; 9].join(",");
    for (args, expected) in [
        (
            vec!["--token-secret", short],
            "the secret is shorter than 32 bytes",
        ),
        (
            vec!["--token-secret", spaced],
            "the secret must be printable ASCII",
        ),
        (
            vec!["--token-secret", stray_comma.as_str()],
            "secret #2 of 2 is empty",
        ),
        (
            vec!["--token-secret", nine.as_str()],
            "9 secrets given; at most 8",
        ),
        (
            vec!["--token-secret", SECRET_A, "--token-secret", short],
            "secret #2 of 2 is shorter",
        ),
    ] {
        let message = error(&args).to_string();
        assert!(message.contains("--token-secret"), "{message}");
        assert!(message.contains(expected), "{args:?}: {message}");
        assert!(
            !message.contains("0123456789abcdef"),
            "secrets are never echoed: {message}"
        );
    }
    match parse_with_env(&[], &[(ENV_TOKEN_SECRET, short)]) {
        Err(ConfigError::InvalidValue {
            setting: "token-secret",
            origin: Some(Origin::Environment {
                var: ENV_TOKEN_SECRET,
            }),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Set in code, checked by validate.
    let config = Config {
        token_secrets: vec![short.into()],
        ..Config::default()
    };
    assert!(config.validate().is_err());
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
    assert_eq!(
        run(&["--http", "[::1]:0"]).http_addr.as_deref(),
        Some("[::1]:0")
    );
}

#[test]
fn off_binds_no_listener_from_flags_and_file() {
    let config = run(&["--ws", "off", "--http=OFF"]);
    assert_eq!((config.ws_addr, config.http_addr), (None, None));
    assert!(Config {
        ws_addr: None,
        http_addr: None,
        ..Config::default()
    }
    .validate()
    .is_ok());
    let file = TempToml::new("http = \"off\"\n");
    let config = run(&["--config", file.path()]);
    assert_eq!(config.http_addr, None);
    assert_eq!(config.ws_addr.as_deref(), Some("127.0.0.1:9001"));
    // A flag turns back on what the file turned off.
    let config = run(&["--config", file.path(), "--http", "127.0.0.1:0"]);
    assert_eq!(config.http_addr.as_deref(), Some("127.0.0.1:0"));
}

#[test]
fn off_binds_no_listener_from_the_environment() {
    let env = [("PUMPHUB_WS", "off"), ("PUMPHUB_HTTP", "Off")];
    let Ok(Invocation::Run(config)) = parse_with_env(&[], &env) else {
        panic!("expected Run");
    };
    assert_eq!((config.ws_addr, config.http_addr), (None, None));
    // A flag turns back on what the environment turned off.
    let Ok(Invocation::Run(config)) = parse_with_env(&["--ws", "127.0.0.1:0"], &env) else {
        panic!("expected Run");
    };
    assert_eq!(config.ws_addr.as_deref(), Some("127.0.0.1:0"));
    assert_eq!(config.http_addr, None);
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
        token_secrets: vec![SECRET_A.into(), SECRET_B.into()],
        publish_key: Some("k3y".into()),
        ..Config::default()
    };
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("s3cret") && !debug.contains("k3y") && !debug.contains("0123456789"),
        "{debug}"
    );
    assert!(debug.contains("token_secrets: [2 <redacted>]"), "{debug}");
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
