#!/usr/bin/env python3
"""Benchmark driver: restart latency (kill -> new process running) and idle usage."""
import os, signal, statistics, sys, time


def read_stamp(path):
    try:
        with open(path) as f:
            pid, ts = f.read().split()
            return int(pid), float(ts)
    except (OSError, ValueError):
        return None


def restart_latency(stamp, n):
    """Median/p90 ms from SIGKILL of the unit to its replacement's first instruction."""
    deadline = time.time() + 30
    while read_stamp(stamp) is None:
        if time.time() > deadline:
            sys.exit(f"unit never wrote {stamp}")
        time.sleep(0.01)
    lat = []
    for _ in range(n):
        pid, _ = read_stamp(stamp)
        time.sleep(0.05)  # let the supervisor settle between kills
        t_kill = time.time()
        os.kill(pid, signal.SIGKILL)
        deadline = t_kill + 10
        while True:
            s = read_stamp(stamp)
            if s and s[0] != pid:
                lat.append((s[1] - t_kill) * 1000)
                break
            if time.time() > deadline:
                sys.exit(f"no restart within 10 s after kill #{len(lat) + 1}")
            time.sleep(0.0002)
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.9)]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def idle(pids, seconds):
    """Average RSS (KiB) and CPU seconds over `seconds` for each pid."""
    hz = os.sysconf("SC_CLK_TCK")
    start = {p: cpu_ticks(p) for p in pids}
    rss = {p: [] for p in pids}
    end = time.time() + seconds
    while time.time() < end:
        for p in pids:
            rss[p].append(rss_kib(p))
        time.sleep(1)
    return {p: (statistics.mean(rss[p]), (cpu_ticks(p) - start[p]) / hz) for p in pids}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "restart":
        med, p90 = restart_latency(sys.argv[2], int(sys.argv[3]))
        print(f"{med:.3f} {p90:.3f}")
    elif mode == "idle":
        pids = [int(p) for p in sys.argv[3:]]
        for p, (r, c) in idle(pids, float(sys.argv[2])).items():
            print(f"{p} {r:.0f} {c:.2f}")
