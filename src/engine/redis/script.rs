//! The Lua scripts the engine runs inside Redis, and their argument
//! layout.
//!
//! A script runs atomically: no other command, from any node, runs in the
//! middle of one. That is what makes "take the next seq" and "append it to
//! the log and the channel's history" one step, so two nodes can never
//! interleave them. Each script declares every key it touches (all in the
//! hub's hash slot, see `keys.rs`). They are loaded with `SCRIPT LOAD` on
//! every new connection and run with `EVALSHA` (`connection.rs` reloads on
//! `NOSCRIPT`). Pure text and argument building; no I/O here.

/// Join, or rejoin, the hub's sequence.
///
/// KEYS: meta. ARGV: a fresh candidate epoch, the epoch this node knows
/// ("" if none), the newest seq this node has read.
///
/// - No epoch stored (first node ever, or Redis lost its data): store the
///   candidate, with the sequence continuing from this node's position so
///   seqs do not restart lower than what clients already saw.
/// - The node's epoch is stored but the sequence is *behind* what the node
///   already read: Redis lost acknowledged writes (a failover to a replica
///   that lagged). Seqs would be handed out twice, so start a new epoch,
///   again continuing from the node's position.
/// - Otherwise the stored epoch stands (nodes that knew another epoch
///   adopt it).
///
/// Returns `{epoch, seq, how}` with `how` one of `new`, `rotated`, `kept`.
pub(crate) const HELLO: &str = r#"
local meta = KEYS[1]
local epoch = redis.call('HGET', meta, 'epoch')
local mine = tonumber(ARGV[3])
if not epoch then
  redis.call('HSET', meta, 'epoch', ARGV[1], 'seq', ARGV[3])
  return {ARGV[1], ARGV[3], 'new'}
end
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
if epoch == ARGV[2] and seq < mine then
  redis.call('HSET', meta, 'epoch', ARGV[1], 'seq', ARGV[3])
  return {ARGV[1], ARGV[3], 'rotated'}
end
return {epoch, string.format('%d', seq), 'kept'}
"#;

/// Append items to the hub's sequence.
///
/// KEYS: meta, log, trimmed, then one channel stream per *event* item, in
/// item order. ARGV: the node's epoch, the node's id, the history size per
/// channel, the log's approximate length cap, then four per item: kind
/// (`p` event, `e` broadcast error), channel (`""` for an error), data
/// (JSON text), ts (Unix ms).
///
/// Refuses with an `EPOCH` error if the stored epoch is not the node's: the
/// node must rejoin first (and, if the epoch changed, resync its clients).
/// Each item gets the next seq and goes to the log; an event also goes to
/// its channel's stream. A stream that reaches `keep + slack` entries
/// (`slack` = keep/16, at least 1) is trimmed back to `keep` in one step,
/// so trimming costs little per event, and the newest trimmed seq is
/// recorded in `trimmed`: `complete` stays exact. Returns the first item's
/// seq.
pub(crate) const PUBLISH: &str = r#"
local meta, log, trimmed = KEYS[1], KEYS[2], KEYS[3]
if redis.call('HGET', meta, 'epoch') ~= ARGV[1] then
  return redis.error_reply('EPOCH the hub epoch changed; rejoining')
end
local keep = tonumber(ARGV[3])
local slack = math.max(1, math.floor(keep / 16))
local logmax = ARGV[4]
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local first = seq + 1
local nextkey = 4
for base = 5, #ARGV, 4 do
  local kind, ch, data, ts = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  seq = seq + 1
  local id = string.format('%d-0', seq)
  redis.call('XADD', log, 'MAXLEN', '~', logmax, id,
    'k', kind, 'c', ch, 'd', data, 't', ts, 'n', ARGV[2])
  if kind == 'p' then
    local key = KEYS[nextkey]
    nextkey = nextkey + 1
    if keep == 0 then
      redis.call('HSET', trimmed, ch, string.format('%d', seq))
    else
      redis.call('XADD', key, id, 'd', data, 't', ts)
      local len = redis.call('XLEN', key)
      if len >= keep + slack then
        local old = redis.call('XRANGE', key, '-', '+', 'COUNT', len - keep)
        redis.call('XTRIM', key, 'MAXLEN', keep)
        redis.call('HSET', trimmed, ch, string.match(old[#old][1], '^(%d+)'))
      end
    end
  end
end
redis.call('HSET', meta, 'seq', string.format('%d', seq))
return first
"#;

/// Read channels' kept history after a seq, in one atomic look.
///
/// KEYS: meta, trimmed, then one channel stream per channel. ARGV: the
/// first seq wanted (`since + 1`), the most entries to read per channel
/// (what a stream can hold: the history size plus its trimming slack),
/// then the channel names (for `trimmed`).
///
/// Returns `{epoch, seq, {trimmed_1, entries_1}, …}`: the head of the
/// sequence at the moment of reading, and per channel the newest trimmed
/// seq (`"0"` if none) and its entries from `since + 1` on.
pub(crate) const REPLAY: &str = r#"
local meta, trimmed = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'epoch') or ''
local seq = redis.call('HGET', meta, 'seq') or '0'
local out = {epoch, seq}
local from = ARGV[1] .. '-0'
for i = 3, #KEYS do
  local cut = redis.call('HGET', trimmed, ARGV[i]) or '0'
  local entries = redis.call('XRANGE', KEYS[i], from, '+', 'COUNT', ARGV[2])
  out[#out + 1] = {cut, entries}
end
return out
"#;

/// The most entries a channel's stream holds for `history_size` (see
/// `PUBLISH`): the replay reads at most this many per channel.
pub(crate) fn stream_capacity(history_size: usize) -> usize {
    history_size + (history_size / 16).max(1)
}

/// Kinds of log entries, as the `k` field stores them.
pub(crate) const KIND_EVENT: &str = "p";
/// A broadcast error (no channel).
pub(crate) const KIND_ERROR: &str = "e";
