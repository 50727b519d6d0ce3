//! Channel names: the one rule every subscribe, publish and `?channels=`
//! is checked against. Pure code, called from any thread.

/// The longest channel name the hub accepts, in bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 128;

/// True if `name` matches `^[A-Za-z0-9_.:-]{1,128}$`.
///
/// ```
/// assert!(pumphub::protocol::is_valid_channel_name("prices.eu:btc-usd_1"));
/// assert!(!pumphub::protocol::is_valid_channel_name("has space"));
/// assert!(!pumphub::protocol::is_valid_channel_name(""));
/// ```
pub fn is_valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CHANNEL_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}
