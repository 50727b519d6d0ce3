//! Who is on the other end of a WebSocket connection: its [`ConnectionId`]
//! and the [`ConnectionInfo`] its handshake learned. Plain data, built once
//! by the connection's thread and then shared read-only: the broadcaster
//! keeps it for `/status`, an [`Authorizer`](crate::Authorizer) is shown it.
//!
//! Also who a request really comes from behind a reverse proxy:
//! [`IpRange`] (what `--trusted-proxy` takes) and [`forwarded_client`],
//! which reads `X-Forwarded-For` / `Forwarded` only when the TCP peer is a
//! trusted proxy. Pure functions, called by the handshake (`ws/`) and the
//! HTTP guard (`http/`) on their own threads.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use uuid::Uuid;

/// A connection's id: a random UUID v4, shown lower-case as in `welcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub Uuid);

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        ConnectionId(Uuid::new_v4())
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl std::str::FromStr for ConnectionId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ConnectionId)
    }
}

/// What the hub knows about a connection from its handshake.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Its id.
    pub id: ConnectionId,
    /// The client's address: the TCP peer's, or, when the peer is one of
    /// `--trusted-proxy` and forwarded the request for someone, the address
    /// it names (port 0 when the proxy gave none). This is the address the
    /// logs, `/status` and `--max-connections-per-ip` go by.
    pub remote_addr: SocketAddr,
    /// The trusted proxy the connection came through, when `remote_addr`
    /// came from its `X-Forwarded-For` or `Forwarded` header.
    pub via: Option<SocketAddr>,
    /// The upgrade request's `User-Agent`.
    pub user_agent: Option<String>,
    /// The upgrade request's `Origin`.
    pub origin: Option<String>,
    /// When the handshake completed, Unix ms.
    pub connected_at_ms: u64,
}

impl ConnectionInfo {
    /// The client for a log line: `203.0.113.9:4711`, or
    /// `203.0.113.9 via 127.0.0.1:50312` behind a trusted proxy (the port
    /// left out when the proxy did not say it).
    pub fn describe_peer(&self) -> String {
        describe_client(self.remote_addr, self.via)
    }
}

/// `ip:port`, or `ip via proxy:port` for a forwarded client; see
/// [`ConnectionInfo::describe_peer`].
pub(crate) fn describe_client(client: SocketAddr, via: Option<SocketAddr>) -> String {
    match via {
        None => client.to_string(),
        Some(proxy) if client.port() == 0 => format!("{} via {proxy}", client.ip()),
        Some(proxy) => format!("{client} via {proxy}"),
    }
}

/// An address or a CIDR block, as `--trusted-proxy` takes them:
/// `10.0.0.7`, `10.0.0.0/8`, `::1`, `fd00::/8`.
///
/// An IPv4 client seen on an IPv6 socket (`::ffff:10.0.0.7`) matches the
/// IPv4 forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// True if `ip` is in this range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == u32::from(network),
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                mask_v6(ip, self.prefix) == u128::from(network)
            }
            _ => false,
        }
    }
}

/// The first `prefix` bits of `ip` (0 to 32), the rest zero.
fn mask_v4(ip: Ipv4Addr, prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        _ => u32::from(ip) & (u32::MAX << (32 - u32::from(prefix.min(32)))),
    }
}

/// The first `prefix` bits of `ip` (0 to 128), the rest zero.
fn mask_v6(ip: Ipv6Addr, prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        _ => u128::from(ip) & (u128::MAX << (128 - u32::from(prefix.min(128)))),
    }
}

impl FromStr for IpRange {
    /// What is wrong, for the config error.
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| "expected an IP address or a CIDR block such as 10.0.0.0/8".to_owned())?;
        let ip = ip.to_canonical();
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= bits => prefix,
                _ => return Err(format!("the prefix length must be 0 to {bits}")),
            },
        };
        // Host bits are ignored: 10.1.2.3/8 is 10.0.0.0/8.
        let network = match ip {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(mask_v4(v4, prefix))),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(mask_v6(v6, prefix))),
        };
        Ok(IpRange { network, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Who a request comes from, when the TCP `peer` is a trusted proxy that
/// says so; `None` to go by the peer itself.
///
/// `x_forwarded_for` and `forwarded` are the values of every such header
/// line, joined with `,` in the order received. `X-Forwarded-For` is used
/// when present (nginx, HAProxy and cloud load balancers set it), else
/// RFC 7239 `Forwarded` (its `for=` parameters). Each proxy appends the
/// address it got the request from, so the list is read from the right:
/// addresses of trusted proxies are skipped, and the first other one is the
/// client. A client cannot fake its way in by sending the header itself:
/// its made-up entries sit left of the one its proxy appended. An entry
/// that is not an address (`unknown`, an obfuscated `_name`) ends the
/// search with `None`.
pub fn forwarded_client(
    peer: IpAddr,
    trusted: &[IpRange],
    x_forwarded_for: Option<&str>,
    forwarded: Option<&str>,
) -> Option<SocketAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|range| range.contains(ip));
    if !is_trusted(peer) {
        return None;
    }
    let entries: Vec<Option<SocketAddr>> = match (x_forwarded_for, forwarded) {
        (Some(list), _) => list.split(',').map(parse_node).collect(),
        (None, Some(list)) => list.split(',').map(forwarded_for).collect(),
        (None, None) => return None,
    };
    let mut client = None;
    for entry in entries.into_iter().rev() {
        let address = entry?;
        client = Some(address);
        if !is_trusted(address.ip()) {
            break;
        }
    }
    // Every entry was a trusted proxy: the leftmost is as far as we know.
    client
}

/// The `for=` node of one `Forwarded` element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<SocketAddr> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_node(value.trim().trim_matches('"')))?
    })
}

/// One address as proxies write them: `1.2.3.4`, `1.2.3.4:5678`,
/// `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:5678`. Port 0 when none.
fn parse_node(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip.to_canonical(), 0));
    }
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some(SocketAddr::new(address.ip().to_canonical(), address.port()));
    }
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .parse::<Ipv6Addr>()
        .ok()
        .map(|ip| SocketAddr::new(IpAddr::V6(ip).to_canonical(), 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(list: &[&str]) -> Vec<IpRange> {
        list.iter().map(|r| r.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let r: IpRange = "10.1.2.3/8".parse().unwrap();
        assert_eq!(r.to_string(), "10.0.0.0/8");
        assert!(r.contains(ip("10.200.0.1")));
        assert!(r.contains(ip("::ffff:10.0.0.1")));
        assert!(!r.contains(ip("11.0.0.1")));
        let one: IpRange = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: IpRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::1")));
        let v6: IpRange = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        let host: IpRange = "::1".parse().unwrap();
        assert!(host.contains(ip("::1")));
        let everything6: IpRange = "::/0".parse().unwrap();
        assert!(everything6.contains(ip("2001:db8::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "nope",
            "10.0.0.0/x",
            "1.2.3.4:80",
        ] {
            assert!(bad.parse::<IpRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_addresses_are_believed_only_from_trusted_peers() {
        let trusted = ranges(&["127.0.0.1", "10.0.0.0/8"]);
        let client = |peer: &str, xff: Option<&str>, fwd: Option<&str>| {
            forwarded_client(ip(peer), &trusted, xff, fwd).map(|a| a.to_string())
        };
        let some = |s: &str| Some(s.to_string());
        // An untrusted peer's header is ignored.
        assert_eq!(client("203.0.113.9", Some("1.2.3.4"), None), None);
        // A trusted peer without a header: go by the peer.
        assert_eq!(client("127.0.0.1", None, None), None);
        assert_eq!(
            client("127.0.0.1", Some("203.0.113.9"), None),
            some("203.0.113.9:0")
        );
        // Read from the right; trusted hops are skipped; a client's own
        // made-up entries on the left are never reached.
        assert_eq!(
            client("127.0.0.1", Some("6.6.6.6, 203.0.113.9, 10.0.0.5"), None),
            some("203.0.113.9:0")
        );
        // All trusted: the leftmost.
        assert_eq!(
            client("127.0.0.1", Some("10.0.0.9,10.0.0.5"), None),
            some("10.0.0.9:0")
        );
        // `unknown` stops the search.
        assert_eq!(client("127.0.0.1", Some("1.2.3.4, unknown"), None), None);
        // Ports and brackets as proxies write them.
        assert_eq!(
            client("127.0.0.1", Some("[2001:db8::1]:4711"), None),
            some("[2001:db8::1]:4711")
        );
        assert_eq!(
            client("127.0.0.1", Some("198.51.100.1:80"), None),
            some("198.51.100.1:80")
        );
        // RFC 7239, used when there is no X-Forwarded-For.
        let fwd = r#"for=6.6.6.6, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.5"#;
        assert_eq!(
            client("10.1.1.1", None, Some(fwd)),
            some("[2001:db8:cafe::17]:4711")
        );
        assert_eq!(client("10.1.1.1", None, Some("for=_hidden")), None);
        assert_eq!(
            client("10.1.1.1", Some("192.0.2.1"), Some(fwd)),
            some("192.0.2.1:0")
        );
        // Garbage is not an address.
        assert_eq!(client("127.0.0.1", Some(""), None), None);
        assert_eq!(client("127.0.0.1", Some("\u{0}"), None), None);
    }

    #[test]
    fn a_forwarded_peer_is_described_with_its_proxy() {
        let proxy: SocketAddr = "127.0.0.1:50312".parse().unwrap();
        let client: SocketAddr = "203.0.113.9:0".parse().unwrap();
        assert_eq!(
            describe_client(client, Some(proxy)),
            "203.0.113.9 via 127.0.0.1:50312"
        );
        let with_port: SocketAddr = "203.0.113.9:4711".parse().unwrap();
        assert_eq!(
            describe_client(with_port, Some(proxy)),
            "203.0.113.9:4711 via 127.0.0.1:50312"
        );
        assert_eq!(describe_client(proxy, None), "127.0.0.1:50312");
    }
}
