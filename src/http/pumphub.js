/*
 * pumphub.js: a browser client for pumphub that reconnects and resumes.
 *
 * Served by the hub at GET /pumphub.js (the live page at GET / uses it too).
 * No dependencies; load it with a plain script tag:
 *
 *   <script src="http://127.0.0.1:9002/pumphub.js"></script>
 *   <script>
 *     const hub = new PumphubClient("ws://127.0.0.1:9001/ws", {
 *       channels: ["news"],
 *       onEvent: (event) => console.log(event.seq, event.channel, event.data),
 *       onGap: (gap) => console.warn("missed events:", gap),
 *     });
 *     // later: hub.subscribe(["prices"]), hub.unsubscribe(["news"]), hub.close()
 *   </script>
 *
 * What it promises: every event of the channels you follow, once, in seq
 * order, across dropped connections; and when it cannot promise that (the
 * hub restarted, or the missed events fell out of its history), an onGap
 * call instead of silence. How, in wire terms (docs/protocol.md,
 * "Resuming without losing events"):
 *
 *   welcome -> (auth) -> subscribe {since} -> replayed events, subscribed -> live events
 *
 * On any close it reconnects with exponential backoff and jitter (at least
 * `reconnect_ms` after a `shutdown` frame) and subscribes again with `since`
 * set to the newest seq it delivered. A new `epoch` in `welcome` means a new
 * hub instance whose seqs started again at 1: that is reported as a gap.
 *
 * Options (all optional but the callbacks you care about):
 *   channels      channel names to follow from the start
 *   since, epoch  resume from an earlier session (say, kept in localStorage):
 *                 deliver only events after seq `since` of hub instance `epoch`
 *   token         the hub's --token, sent in an `auth` request, never in the URL
 *   onEvent(event)           an `event` frame: {seq, channel, ts, data}
 *   onGap(gap)               {reason: "new epoch" | "history", ...}
 *   onState(state, detail)   "connecting" | "open" | "subscribed" | "reconnecting" | "closed"
 *   onError(frame)           an `error` frame no promise was waiting for:
 *                            a broadcast error (it has a seq), or a refused
 *                            `auth` or resume, after which the client closes:
 *                            it would be refused again
 *   backoffMinMs, backoffMaxMs  reconnect delays, default 100 and 5000
 *
 * Methods: subscribe(names), unsubscribe(names), publish(channel, data),
 * close(). The first three return a Promise of the hub's reply frame; a
 * refused request rejects with an Error whose `code` is the protocol's error
 * code (`forbidden`, `too_many_subscriptions`, ...), or "closed" if the
 * connection ended first; an invalid channel name rejects with a TypeError
 * before anything is sent. Between connections subscribe and unsubscribe
 * only change what the next connection subscribes to, and resolve with null.
 *
 * More, with the wire exchange and how it is tested: docs/browser-client.md.
 */
(function (global) {
  "use strict";

  // The hub's rule for channel names (docs/protocol.md, "The shape of it").
  const CHANNEL_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

  class PumphubClient {
    constructor(url, options = {}) {
      this.url = url;
      this._options = options;
      this._channels = new Set(checkedNames(options.channels ?? []));
      this._epoch = options.epoch ?? null;       // the hub instance whose seqs we follow
      this._lastSeq = options.since ?? null;     // newest seq delivered (null: none yet)
      this._backoffMinMs = options.backoffMinMs ?? 100;
      this._backoffMaxMs = options.backoffMaxMs ?? 5000;
      this._attempt = 0;                         // reconnects since the last welcome
      this._waitAtLeastMs = 0;                   // from a `shutdown` frame
      this._socket = null;                       // frames from older sockets are ignored
      this._ready = false;                       // `welcome` arrived on this socket
      this._stopped = false;                     // closed for good: by close(), or refused
      this._retryTimer = null;
      this._pending = new Map();                 // request id -> {resolve, reject}
      this._nextId = 1;
      this.connectionId = null;
      this.state = "connecting";
      this._connect();
    }

    /** The channels followed now (or on the next connection). */
    get channels() { return [...this._channels]; }
    /** The newest seq delivered, to resume from later with `since`. */
    get lastSeq() { return this._lastSeq; }
    /** The hub instance that seq belongs to. */
    get epoch() { return this._epoch; }

    /** Follow more channels: live from now (`since` only applies on resume). */
    subscribe(names) {
      try {
        names = checkedNames(names);
      } catch (error) {
        return Promise.reject(error);
      }
      const added = names.filter((name) => !this._channels.has(name));
      for (const name of added) this._channels.add(name);
      if (!this._ready) return Promise.resolve(null);
      return this._request({ type: "subscribe", channels: names }).catch((error) => {
        // Refused (not merely cut off): do not ask again on the next connection.
        if (error.code !== "closed") for (const name of added) this._channels.delete(name);
        throw error;
      });
    }

    /** Stop following channels. Events of them already on the way are dropped here. */
    unsubscribe(names) {
      try {
        names = checkedNames(names);
      } catch (error) {
        return Promise.reject(error);
      }
      for (const name of names) this._channels.delete(name);
      if (!this._ready) return Promise.resolve(null);
      return this._request({ type: "unsubscribe", channels: names });
    }

    /** Publish over the WebSocket; the hub allows it only with --allow-client-publish. */
    publish(channel, data) {
      if (!this._ready) return Promise.reject(closedError("not connected"));
      return this._request({ type: "publish", channel, data });
    }

    /** Close for good: no more reconnects, no more callbacks but onState("closed"). */
    close() {
      this._stop("closed by the client");
    }

    // --- one connection ---

    _connect() {
      this._setState("connecting", { url: this.url });
      let socket;
      try {
        socket = new global.WebSocket(this.url);
      } catch (error) {
        // A malformed URL: retrying cannot help.
        this._stopped = true;
        this._setState("closed", { code: null, reason: error.message });
        return;
      }
      this._socket = socket;
      socket.onmessage = (message) => socket === this._socket && this._onFrame(message.data);
      socket.onclose = (event) => socket === this._socket && this._onClose(event);
    }

    _onFrame(text) {
      let frame;
      try {
        frame = JSON.parse(text);
      } catch {
        console.warn("pumphub: not JSON from the hub:", text);
        return;
      }
      switch (frame.type) {
        case "welcome": return this._onWelcome(frame);
        case "event": return this._onEvent(frame);
        case "error": return this._onErrorFrame(frame);
        case "shutdown":
          this._waitAtLeastMs = frame.reconnect_ms ?? 0;
          return;
        default: return this._settle(frame.id, (waiter) => waiter.resolve(frame));
      }
    }

    _onWelcome(frame) {
      this._attempt = 0;
      this._ready = true;
      this.connectionId = frame.connection_id;
      // A different epoch is a new hub instance: its seqs began again at 1,
      // so our `since` means nothing there, and what was published while it
      // was down is unknown. A `since` beyond the hub's newest seq says the
      // same about a session resumed without its epoch.
      const lost = (this._epoch !== null && frame.epoch !== this._epoch) ||
        (this._lastSeq !== null && this._lastSeq > frame.seq);
      if (lost) {
        this._emit("onGap", { reason: "new epoch", lastSeq: this._lastSeq, epoch: frame.epoch });
        this._lastSeq = 0; // replay whatever the new instance kept
      }
      this._epoch = frame.epoch;
      // First connection: "from now on", which also catches an event
      // published between `welcome` and our `subscribe`.
      if (this._lastSeq === null) this._lastSeq = frame.seq;
      const since = this._lastSeq;
      this._setState("open", {
        connectionId: frame.connection_id, epoch: frame.epoch, server: frame.server, seq: frame.seq,
      });
      // Requests are answered in order: no need to wait for `authenticated`.
      const token = this._options.token;
      if (token) this._request({ type: "auth", token }).catch((error) => this._refused(error));
      const channels = this.channels;
      if (channels.length === 0) {
        this._setState("subscribed", { channels, replayed: 0, complete: true });
        return;
      }
      this._request({ type: "subscribe", channels, since }).then((reply) => {
        if (!reply.complete) this._emit("onGap", { reason: "history", since });
        this._setState("subscribed", { channels: reply.channels, replayed: reply.replayed, complete: reply.complete });
      }, (error) => this._refused(error));
    }

    _onEvent(frame) {
      if (frame.seq <= this._lastSeq) return; // already delivered: a duplicate
      this._lastSeq = frame.seq;
      // Sent before the hub saw our unsubscribe: not wanted any more.
      if (!this._channels.has(frame.channel)) return;
      this._emit("onEvent", frame);
    }

    _onErrorFrame(frame) {
      // An error with a seq is a broadcast from the embedding application:
      // it takes a seq from the same counter as events.
      if (typeof frame.seq === "number") {
        this._lastSeq = Math.max(this._lastSeq ?? 0, frame.seq);
        this._emit("onError", frame);
        return;
      }
      const error = new Error(`${frame.code}: ${frame.message}`);
      error.code = frame.code;
      error.frame = frame;
      if (!this._settle(frame.id, (waiter) => waiter.reject(error))) this._emit("onError", frame);
    }

    _onClose(event) {
      this._dropConnection(`connection closed (${event.code})`);
      if (this._stopped) return;
      // 4008 (slow consumer), 1001 (shutdown), a network drop: all resume
      // the same way. Jitter keeps a thousand pages from coming back in the
      // same millisecond after a restart.
      const ceiling = Math.min(this._backoffMaxMs, this._backoffMinMs * 2 ** this._attempt++);
      const delayMs = Math.max(this._waitAtLeastMs, ceiling / 2 + Math.random() * (ceiling / 2));
      this._waitAtLeastMs = 0;
      this._setState("reconnecting", { code: event.code, reason: event.reason, delayMs });
      this._retryTimer = setTimeout(() => this._connect(), delayMs);
    }

    /** The hub refused our `auth` or resume: asking again would be refused
     * again (the Rust client gives up on these too). */
    _refused(error) {
      if (error.code === "closed") return; // cut off, not refused: the reconnect will ask again
      this._emit("onError", error.frame);
      this._stop(`the hub refused: ${error.message}`);
    }

    _stop(reason) {
      if (this._stopped && this.state === "closed") return;
      this._stopped = true;
      clearTimeout(this._retryTimer);
      const socket = this._socket;
      this._dropConnection(reason);
      if (socket) socket.close(1000);
      this._setState("closed", { code: 1000, reason });
    }

    /** Forget the current socket; whoever waits for a reply on it is told why. */
    _dropConnection(why) {
      this._socket = null;
      this._ready = false;
      for (const waiter of this._pending.values()) waiter.reject(closedError(why));
      this._pending.clear();
    }

    // --- plumbing ---

    _request(body) {
      const id = this._nextId++;
      return new Promise((resolve, reject) => {
        this._pending.set(id, { resolve, reject });
        this._socket.send(JSON.stringify({ ...body, id }));
      });
    }

    /** Hand a reply to whoever waits for request `id`; false if nobody does. */
    _settle(id, action) {
      const waiter = this._pending.get(id);
      if (!waiter) return false;
      this._pending.delete(id);
      action(waiter);
      return true;
    }

    _setState(state, detail) {
      this.state = state;
      this._emit("onState", state, detail);
    }

    /** Call back into the application; its exceptions must not break our state. */
    _emit(name, ...args) {
      const callback = this._options[name];
      if (typeof callback !== "function") return;
      try {
        callback(...args);
      } catch (error) {
        console.error(`pumphub: ${name} threw`, error);
      }
    }
  }

  function checkedNames(names) {
    if (!Array.isArray(names)) throw new TypeError("channels must be an array of names");
    for (const name of names) {
      if (typeof name !== "string" || !CHANNEL_NAME.test(name)) {
        throw new TypeError(`invalid channel name ${JSON.stringify(name)}: use 1-128 of A-Z a-z 0-9 _ . : -`);
      }
    }
    return [...new Set(names)];
  }

  function closedError(why) {
    const error = new Error(why);
    error.code = "closed";
    return error;
  }

  global.PumphubClient = PumphubClient;
})(globalThis);
