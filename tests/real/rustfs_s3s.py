#!/usr/bin/env python3
"""Stand-in for RustFS's *command line* only; the S3 server behind it is real: s3s-fs.

RustFS itself cannot be built here in CI time. This takes what the rustfs preset starts
(`rustfs --address 127.0.0.1:PORT DIR`, RUSTFS_ACCESS_KEY / RUSTFS_SECRET_KEY), runs
s3s-fs (crates.io; it verifies SigV4, header and presigned) on a private loopback port with
that root key and DIR/s3 as its store, and fronts it on PORT:
  - GET /health -> 200, as RustFS answers;
  - PutBucketPolicy / GetBucketPolicy / DeleteBucketPolicy, which s3s-fs does not
    implement, are kept here per bucket (DIR/policies.json) and NOT enforced: s3s-fs
    refuses every unsigned request anyway. LobeChat 2.x reads through presigned URLs;
  - everything else goes to s3s-fs byte for byte (Host untouched, so signatures verify),
    streamed both ways.
The s3s-fs binary: $S3S_FS, else $PSTEST_DEPS/s3s/bin/s3s-fs.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNK = 64 * 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common_objects"))
from rustfs_cli import fail, parse  # noqa: E402

port, data, key, secret = parse()
s3s_bin = os.environ.get("S3S_FS") or os.path.join(
    os.environ.get("PSTEST_DEPS", "/opt/prometheus-stack-test"), "s3s/bin/s3s-fs")
if not os.access(s3s_bin, os.X_OK):
    fail("s3s-fs not found at %s (tests/setup.sh installs it)" % s3s_bin)

store = os.path.join(data, "s3")
os.makedirs(store, exist_ok=True)
policies_file = os.path.join(data, "policies.json")
policies_lock = threading.Lock()
inner_port = free_port()
inner = subprocess.Popen([s3s_bin, "--host", "127.0.0.1", "--port", str(inner_port),
                          "--access-key", key, "--secret-key", secret, store])


def stop(*_):
    inner.terminate()
    try:
        inner.wait(5)
    except subprocess.TimeoutExpired:
        inner.kill()
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", inner_port), 0.2).close()
        break
    except OSError:
        if inner.poll() is not None:
            fail("s3s-fs exited with %s" % inner.returncode)
        time.sleep(0.05)


def load_policies():
    try:
        with open(policies_file) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


class Front(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if self.path != "/health":  # the daemon probes it every few seconds
            sys.stderr.write("rustfs stand-in: %s %s\n" % (self.address_string(), fmt % a))

    def reply(self, status, body=b"", ctype="application/xml"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def policy(self, bucket):
        with policies_lock:
            policies = load_policies()
            if self.command == "PUT":
                n = int(self.headers.get("Content-Length", "0"))
                policies[bucket] = self.rfile.read(n).decode()
            elif self.command == "DELETE":
                policies.pop(bucket, None)
            elif bucket not in policies:
                return self.reply(404, b"<Error><Code>NoSuchBucketPolicy</Code></Error>")
            else:
                return self.reply(200, policies[bucket].encode(), "application/json")
            with open(policies_file + ".tmp", "w") as f:
                json.dump(policies, f)
            os.replace(policies_file + ".tmp", policies_file)
        self.reply(204)

    def body_chunks(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            b = self.rfile.read(min(CHUNK, left))
            if not b:
                return
            left -= len(b)
            yield b

    def forward(self):
        conn = http.client.HTTPConnection("127.0.0.1", inner_port, timeout=600)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        for k, v in self.headers.items():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                conn.putheader(k, v)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for b in self.body_chunks():
            conn.send(b"%x\r\n%s\r\n" % (len(b), b) if chunked else b)
        if chunked:
            conn.send(b"0\r\n\r\n")
        r = conn.getresponse()
        self.send_response_only(r.status, r.reason)
        length = r.getheader("Content-Length")
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding", "date", "server"):
                self.send_header(k, v)
        no_body = self.command == "HEAD" or r.status in (204, 304)
        if length is None and not no_body:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while not no_body:
            b = r.read(CHUNK)
            if not b:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b) if length is None else b)
        if length is None and not no_body:
            self.wfile.write(b"0\r\n\r\n")
        conn.close()

    def handle_any(self):
        url = urlsplit(self.path)
        if url.path == "/health" and self.command in ("GET", "HEAD"):
            return self.reply(200, b"ok", "text/plain")
        bucket = url.path.strip("/").split("/")[0]
        if "policy" in parse_qs(url.query, keep_blank_values=True) and bucket and "/" not in url.path.strip("/"):
            return self.policy(bucket)
        self.forward()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = handle_any


ThreadingHTTPServer.daemon_threads = True
server = ThreadingHTTPServer(("127.0.0.1", port), Front)
with open(os.path.join(data, "standin.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "access_key": key, "s3s_fs": s3s_bin, "inner_port": inner_port}, f)
try:
    server.serve_forever()
finally:
    stop()
