"""Opens N TLS connections to 127.0.0.1:PORT, one HTTP/1.1 request each, keeps them
idle, prints "ready", and holds them until stdin closes."""
import socket
import ssl
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="bench.test")
    s.sendall(b"GET /small HTTP/1.1\r\nHost: bench.test\r\n\r\n")
    got = s.recv(4096)
    if not got.startswith(b"HTTP/1.1 200"):
        sys.exit(f"unexpected answer: {got[:80]!r}")
    conns.append(s)
print("ready", flush=True)
sys.stdin.read()
