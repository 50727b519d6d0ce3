from websockets.sync.client import connect

with connect("ws://127.0.0.1:36969/ws") as ws:
    ws.send('{"type":"subscribe","channels":["news"],"since":0}')
    for message in ws:  # welcome, kept events, subscribed, then live events
        print(message)
