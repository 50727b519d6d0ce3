//! The `/ws` query (`?channels=a,b&since=S&token=T`) on any string: it is
//! accepted with valid, distinct channel names and `since` only beside
//! `channels`, or refused (400); and an unknown parameter, whatever it
//! holds, changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pumphub::protocol::is_valid_channel_name;
use pumphub::testing::fuzzing::{check_upgrade_query, UpgradeQuery};

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return; // httparse gives the path as text
    };
    let verdict = check_upgrade_query(query);
    if let Some(UpgradeQuery {
        channels: Some(channels),
        ..
    }) = &verdict
    {
        assert!(!channels.is_empty());
        for (i, name) in channels.iter().enumerate() {
            assert!(is_valid_channel_name(name));
            assert!(!channels[..i].contains(name), "duplicate channel");
        }
    }
    // Unknown parameters are ignored, bad escapes and all.
    let name: String = query.chars().filter(char::is_ascii_lowercase).take(8).collect();
    if !matches!(name.as_str(), "channels" | "since" | "token") {
        let extended = format!("{query}&x{name}=%zz{query}");
        assert_eq!(check_upgrade_query(&extended), verdict, "{extended:?}");
    }
});
