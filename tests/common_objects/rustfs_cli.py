"""RustFS's command line as the rustfs preset starts it, refused the way RustFS would:
`rustfs --address 127.0.0.1:PORT DIR` with RUSTFS_ACCESS_KEY (>= 3 chars) and
RUSTFS_SECRET_KEY (>= 8 chars). Shared by the two stand-ins for RustFS's command line
(moto-backed tests/common_objects/rustfs_standin.py, s3s-fs-backed tests/real/rustfs_s3s.py).
"""
import os
import sys


def fail(msg):
    print("rustfs stand-in: " + msg, file=sys.stderr)
    sys.exit(2)


def parse():
    """(port, data dir, access key, secret key) from sys.argv and the environment."""
    args = sys.argv[1:]
    if len(args) != 3 or args[0] != "--address":
        fail("expected: --address 127.0.0.1:PORT DIR, got %r" % args)
    host, _, port = args[1].rpartition(":")
    if host != "127.0.0.1":
        fail("must listen on loopback, got %r" % args[1])
    data = args[2]
    if not os.path.isdir(data):
        fail("data dir %s does not exist (prepare should create it)" % data)
    key = os.environ.get("RUSTFS_ACCESS_KEY", "")
    secret = os.environ.get("RUSTFS_SECRET_KEY", "")
    if len(key) < 3 or len(secret) < 8:
        fail("RUSTFS_ACCESS_KEY (>= 3 chars) and RUSTFS_SECRET_KEY (>= 8 chars) are required")
    return int(port), data, key, secret
