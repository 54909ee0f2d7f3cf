"""Opens N TLS 1.3 connections to 127.0.0.1:PORT, one request each (PROTO "h1": an
HTTP/1.1 keep-alive request; "h2": one stream on an HTTP/2 connection, needs the `h2`
package), keeps them idle, prints "ready", and holds them until stdin closes.

    idle_conns.py PORT N [h1|h2]"""
import socket
import ssl
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
proto = sys.argv[3] if len(sys.argv) > 3 else "h1"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.set_alpn_protocols(["h2"] if proto == "h2" else ["http/1.1"])


def h1(s):
    s.sendall(b"GET /small HTTP/1.1\r\nHost: bench.test\r\n\r\n")
    got = s.recv(4096)
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit(f"unexpected answer: {got[:80]!r}")
    return s


def h2(s):
    import h2.config
    import h2.connection
    import h2.events

    if s.selected_alpn_protocol() != "h2":
        sys.exit("the server did not choose h2")
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    sid = c.get_next_available_stream_id()
    c.send_headers(
        sid,
        [(":method", "GET"), (":authority", "bench.test"), (":scheme", "https"), (":path", "/small")],
        end_stream=True,
    )
    s.sendall(c.data_to_send())
    while True:
        data = s.recv(65536)
        if not data:
            sys.exit("h2 connection closed before the answer")
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(b":status")
                if status != b"200":
                    sys.exit(f"unexpected status {status!r}")
            if isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                s.sendall(c.data_to_send())  # window updates / settings ACK
                return (s, c)
        s.sendall(c.data_to_send())


conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="bench.test")
    conns.append(h2(s) if proto == "h2" else h1(s))
print("ready", flush=True)
sys.stdin.read()
