"""p99 latency in ms from an h2load --log-file (tab-separated: start, status, elapsed us)."""
import sys

lat = sorted(int(line.split("\t")[2]) for line in open(sys.argv[1]) if line.strip())
if not lat:
    sys.exit("no requests logged")
print(f"{lat[min(len(lat) - 1, int(len(lat) * 0.99))] / 1000:.2f}")
