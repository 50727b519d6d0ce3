import json
import random
import time

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


def follow(url, channels, on_event, on_gap, token=None, base_s=0.1, cap_s=5.0):
    """Follow `channels` forever: every event once, in seq order, gaps reported."""
    epoch = None      # the hub instance whose seqs we are following
    last_seq = None   # newest seq handed to on_event (None: nothing yet)
    attempt = 0
    while True:
        wait_at_least = 0.0
        try:
            with connect(url, open_timeout=5) as ws:
                welcome = json.loads(ws.recv(timeout=5))
                attempt = 0
                if epoch is not None and welcome["epoch"] != epoch:
                    # The hub restarted: its seqs began again at 1, and
                    # whatever was published meanwhile is unknown.
                    on_gap({"reason": "new epoch", "last_seq": last_seq})
                    last_seq = 0
                epoch = welcome["epoch"]
                if last_seq is None:
                    last_seq = welcome["seq"]  # first connection: start from now
                since = last_seq
                if token:
                    ws.send(json.dumps({"type": "auth", "token": token}))
                ws.send(json.dumps({"type": "subscribe", "id": "resume",
                                    "channels": channels, "since": since}))
                for text in ws:  # ends when the hub closes the connection
                    msg = json.loads(text)
                    if msg["type"] == "event":
                        if msg["seq"] <= last_seq:
                            continue  # already delivered: drop the duplicate
                        last_seq = msg["seq"]
                        on_event(msg)
                    elif msg["type"] == "subscribed" and not msg["complete"]:
                        on_gap({"reason": "history", "since": since})
                    elif msg["type"] == "shutdown":
                        wait_at_least = msg["reconnect_ms"] / 1000
                    elif msg["type"] == "error":
                        if "seq" in msg:  # broadcast error: takes a seq too
                            last_seq = max(last_seq, msg["seq"])
                        print("pumphub error:", msg)
        except (OSError, WebSocketException) as error:
            print("pumphub: disconnected:", error)
        ceiling = min(cap_s, base_s * 2 ** attempt)  # 0.1, 0.2, 0.4 ... 5 s
        attempt += 1
        time.sleep(max(wait_at_least, random.uniform(ceiling / 2, ceiling)))


if __name__ == "__main__":
    follow("ws://127.0.0.1:36969/ws", ["news"],
           on_event=lambda e: print(e["seq"], e["channel"], e["data"]),
           on_gap=lambda g: print("GAP:", g))
