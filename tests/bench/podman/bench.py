"""Driver for run.sh: interleaved rounds of daemon start-to-healthy and hand podman run."""
import http.client, json, os, signal, socket, statistics, subprocess, sys, time, urllib.request

BIN, WORK, IMAGE, ROUNDS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
SOCK = os.path.join(WORK, "data/run/control.sock")
POLL = 0.010  # same cadence as the unit's health interval


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(method, path):
    c = UnixHTTP(SOCK)
    c.request(method, path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return json.loads(body) if body else None


def web_state():
    for u in api("GET", "/v1/status")["units"]:
        if u["name"] == "web":
            return u["state"]


def wait_state(want, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if web_state() == want:
            return
        time.sleep(0.002)
    raise SystemExit(f"web never became {want}")


def ours():
    api("POST", "/v1/units/web/stop")
    wait_state("stopped")
    t0 = time.monotonic()
    api("POST", "/v1/units/web/start")
    while web_state() != "healthy":
        time.sleep(0.005)
    return time.monotonic() - t0


def http_ok(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=1) as r:
            return r.status < 400
    except Exception:
        return False


def by_hand():
    name = "pbench-hand"
    argv = ["podman", "run", f"--name={name}", "--pull=never", "--replace", "--rm",
            "--network=host", "--log-driver=passthrough", "--init", IMAGE,
            "/bin/httpd", "-f", "-p", "127.0.0.1:24901", "-h", "/www"]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    while not http_ok(24901):
        time.sleep(POLL)
    dt = time.monotonic() - t0
    subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
    p.wait(timeout=10)
    return dt


daemon = subprocess.Popen([BIN, "run", "--config", os.path.join(WORK, "stack.toml")],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(WORK, "daemon.log"), "w"))
try:
    end = time.monotonic() + 30
    while not os.path.exists(SOCK) and time.monotonic() < end:
        time.sleep(0.01)
    wait_state("healthy")
    by_hand()  # warm both paths once
    ours()
    a, b = [], []
    for _ in range(ROUNDS):
        a.append(ours())
        b.append(by_hand())
finally:
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)
    subprocess.run(["podman", "rm", "-f", "-t", "0", "pbench-hand", "pbench-web"], capture_output=True)


def p90(v):
    return sorted(v)[int(0.9 * (len(v) - 1))]


ma, mb = statistics.median(a), statistics.median(b)
print(f"rounds: {ROUNDS} (interleaved), probe/poll interval 10 ms, image {IMAGE}")
print(f"podman run by hand + polling : median {mb*1000:7.1f} ms   p90 {p90(b)*1000:7.1f} ms")
print(f"our daemon (start → healthy) : median {ma*1000:7.1f} ms   p90 {p90(a)*1000:7.1f} ms")
print(f"overhead (median difference) : {(ma-mb)*1000:7.1f} ms   (target < 100 ms)")
print(f"ratio ours / by hand         : {ma/mb:5.2f}")
