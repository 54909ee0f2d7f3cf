#!/usr/bin/env python3
"""Stands in for systemd's notify socket: binds a datagram socket at PATH and
writes every message it gets as one line, "SECONDS MESSAGE" (newlines inside a
message become spaces), to OUT until killed or TIMEOUT seconds pass.

Usage: notify_listen.py PATH OUT [TIMEOUT]
"""
import os
import socket
import sys
import time


def main() -> int:
    path, out = sys.argv[1], sys.argv[2]
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 300.0
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)
    start = time.monotonic()
    with open(out, "a", buffering=1) as f:
        f.write(f"{0.0:.3f} LISTENING\n")
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                return 0
            sock.settimeout(left)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                return 0
            msg = data.decode("utf-8", "replace").strip().replace("\n", " ")
            f.write(f"{time.monotonic() - start:.3f} {msg}\n")


if __name__ == "__main__":
    sys.exit(main())
