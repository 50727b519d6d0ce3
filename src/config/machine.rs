//! What this machine can hold: the connection ceiling that the kernel's
//! limits allow, and with it the default of `--max-connections`.
//!
//! Part of the configuration (see `config.rs`): a default that depends on
//! the machine is still a default, and defaults live here. Read once by
//! `Config::default` and once by `Hub::start` (which caps an explicit
//! `--max-connections` at the ceiling and says so); no thread, no state,
//! only two small reads from /proc.

/// Connection threads that may sit in their handshake at once. At it the
/// acceptor stops accepting until one ends (further connections wait in
/// the listen backlog): a flood of silent sockets must not turn into a
/// flood of threads. Those threads count against the ceiling below.
pub const MAX_PENDING_HANDSHAKES: usize = 1024;

/// How many connections this machine can hold, from the kernel's limits,
/// with the reason; `None` if the limits cannot be read (not Linux).
///
/// Each connection has two threads and one file descriptor (its pumps share
/// the socket, see `ws/socket.rs`). Every thread costs the process four
/// memory mappings (its stack, the stack's guard page, and the alternate
/// signal stack with its guard, which std sets up to report stack
/// overflows). When `vm.max_map_count` (65530 by default) runs out, a new
/// thread cannot set up its signal stack and std aborts the whole process.
/// So the hub refuses connections (503) well before that.
pub fn os_connection_ceiling() -> Option<(usize, String)> {
    const MAPS_PER_THREAD: usize = 4;
    const MAPS_RESERVED: usize = 2048; // the binary, libraries, heap arenas
    const FDS_RESERVED: usize = 64; // listeners, HTTP connections, logs
    let mut ceiling: Option<(usize, String)> = None;
    let mut consider = |limit: usize, why: String| {
        if ceiling.as_ref().is_none_or(|(c, _)| limit < *c) {
            ceiling = Some((limit, why));
        }
    };
    if let Some(maps) = read_number("/proc/sys/vm/max_map_count") {
        let threads = maps.saturating_sub(MAPS_RESERVED) / MAPS_PER_THREAD;
        let connections = threads.saturating_sub(MAX_PENDING_HANDSHAKES) / 2;
        consider(
            connections,
            format!("vm.max_map_count is {maps} (raise it with sysctl -w vm.max_map_count=262144)"),
        );
    }
    if let Some(files) = open_files_limit() {
        consider(
            files.saturating_sub(FDS_RESERVED),
            format!("the open-files limit is {files} (raise it with ulimit -n or LimitNOFILE=)"),
        );
    }
    ceiling
}

/// The default of `--max-connections`: [`DEFAULT_MAX_CONNECTIONS`], or what
/// this machine can hold if that is less (at least 1).
///
/// [`DEFAULT_MAX_CONNECTIONS`]: super::DEFAULT_MAX_CONNECTIONS
pub(super) fn default_max_connections() -> usize {
    match os_connection_ceiling() {
        Some((ceiling, _)) => ceiling.clamp(1, super::DEFAULT_MAX_CONNECTIONS),
        None => super::DEFAULT_MAX_CONNECTIONS,
    }
}

fn read_number(path: &str) -> Option<usize> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The soft `RLIMIT_NOFILE`, read from /proc (no libc call needed).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
