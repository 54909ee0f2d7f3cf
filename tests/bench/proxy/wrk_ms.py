"""Converts a wrk latency (`456.00us`, `1.23ms`, `1.20s`) to milliseconds."""
import re
import sys

m = re.match(r"([\d.]+)(us|ms|s|m)$", sys.argv[1])
if not m:
    sys.exit(f"cannot parse wrk latency {sys.argv[1]!r}")
scale = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]
print(f"{float(m.group(1)) * scale:.2f}")
