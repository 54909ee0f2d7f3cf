#!/usr/bin/python3
"""The real tier (issue 12): the whole stack under prometheus-stack from an empty data dir,
and a person's session in a real browser.

1. `run` on one config file: postgres (+pgvector), objects (rustfs preset; s3s-fs behind
   the RustFS command-line stand-in), Logto 1.42.0 and LobeChat 2.1.26 (real, built by
   tests/real/build.sh), a local model server; every unit healthy/completed, no step by hand.
2. Chromium: LobeChat -> Logto's sign-in -> register -> back signed in -> new chat ->
   upload a file (presigned PUT through the proxy to the real S3 server; read back with the
   root key) -> a message, whose answer streams in word by word.
3. Sign out, sign in again (Logto's own sign-in form): the chat is still there.
4. SIGKILL LobeChat, Logto, PostgreSQL in turn: each comes back by itself, the page works
   after a reload, the uploaded image still loads.
Screenshots of every step: --artifacts DIR/screens; the daemon log: DIR/daemon.log.

Logto here runs with npm's oidc-provider instead of Logto's fork (tests/real/vendor/logto):
this test uses one app in one browser, no custom-scheme redirects and no down-scoped
refresh, so none of the fork's four patches matters.
"""
import argparse
import base64
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stack  # noqa: E402
from browser import Browser  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

P = stack.PORTS
LOBE = "https://lobe.%s:%d" % (stack.DOMAIN, P["https"])
AUTH = "https://auth.%s:%d" % (stack.DOMAIN, P["https"])
USER = "alice" + secrets.token_hex(3)
PASSWORD = "Pstest-" + secrets.token_urlsafe(12)
MESSAGE = "Tell me about prometheus stack"
ANSWER_START = "Hello from the local model."
ANSWER_END = "through the proxy."
# A 2x2 red PNG: a real image LobeChat previews inline.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==")


T0 = time.time()


def log(msg):
    print("[real] %5.1fs %s" % (time.time() - T0, msg), flush=True)


class Run:
    def __init__(self, artifacts):
        self.dir = tempfile.mkdtemp(prefix="pstest-real-")
        self.artifacts = os.path.abspath(artifacts)
        shutil.rmtree(self.artifacts, ignore_errors=True)
        os.makedirs(self.artifacts)
        self.config = stack.write_config(self.dir)
        self.daemon_log = os.path.join(self.dir, "daemon.log")
        self.proc = None
        self.b = None

    # --- the daemon -----------------------------------------------------------------
    def start(self):
        t0 = time.time()
        self.proc = stack.start_daemon(self.config, self.daemon_log, self.dir)
        st = stack.wait_all_up(self.config, self.proc, self.daemon_log, timeout=300)
        log("every unit up from an empty data dir in %.1f s: %s"
            % (time.time() - t0, ", ".join("%s %s" % (n, st[n]["state"]) for n in sorted(st))))
        return st

    def secret(self, name):
        with open(os.path.join(self.dir, "data/secrets", name)) as f:
            return f.read().strip()

    def s3_get(self, key):
        """GET through the S3 API (SigV4 with the root key), straight to the store."""
        user, pw = self.secret("objects-root-user"), self.secret("objects-root-password")
        r = subprocess.run(["curl", "-sS", "--fail-with-body", "--aws-sigv4", "aws:amz:us-east-1:s3",
                            "--user", "%s:%s" % (user, pw), "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                            "http://127.0.0.1:%d/lobe/%s" % (P["objects"], key)],
                           capture_output=True)
        assert r.returncode == 0, "S3 GET %s: %s %s" % (key, r.stdout[:300], r.stderr)
        return r.stdout

    def s3_keys(self):
        body = self.s3_get("?list-type=2").decode()
        return re.findall(r"<Key>([^<]+)</Key>", body)

    def kill_and_wait(self, unit):
        """SIGKILLs the unit's process; waits until the daemon has it healthy again."""
        before = stack.status(self.config)[unit]
        pid = before.get("pid")
        assert pid, "no pid for %s: %s" % (unit, before)
        os.kill(pid, signal.SIGKILL)
        t0 = time.time()
        deadline = t0 + 180
        while time.time() < deadline:
            st = stack.status(self.config) or {}
            u = st.get(unit, {})
            if u.get("state") == "healthy" and u.get("pid") not in (None, pid) \
                    and all(stack.up(x) for x in st.values()):
                log("SIGKILL %s (pid %d): healthy again as pid %d after %.1f s (restarts %s)"
                    % (unit, pid, u["pid"], time.time() - t0, u.get("restarts")))
                return
            time.sleep(0.3)
        raise AssertionError("%s not back after SIGKILL: %s\n%s"
                             % (unit, stack.status(self.config), stack.tail(self.daemon_log)))

    def finish(self):
        if self.b:
            try:
                self.b.shot("last")
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
            self.b.quit()
        if self.proc:
            stack.stop_daemon(self.proc)
        shutil.copy(self.daemon_log, os.path.join(self.artifacts, "daemon.log"))
        llm = os.path.join(self.dir, "llm.jsonl")
        if os.path.exists(llm):
            shutil.copy(llm, os.path.join(self.artifacts, "llm.jsonl"))


# --- the person in the browser --------------------------------------------------------
def fill(b, css, value):
    el = b.wait("field " + css, lambda: (b.visible(css) or [None])[0], 30)
    el.clear()
    el.send_keys(value)
    return el


def click_text(b, what, texts, timeout=30):
    def find():
        for t in texts:
            els = b.by_text(t)
            if els:
                return els[0]
        return None
    el = b.wait(what, find, timeout)
    el.click()


def on_lobechat_app(b):
    u = b.d.current_url
    return u.startswith(LOBE) and "/signin" not in u and "/auth-error" not in u


def logto_sign_up(b):
    """On Logto's sign-in page: create an account with a username and a password."""
    b.wait("Logto's sign-in page", lambda: b.d.current_url.startswith(AUTH) and b.visible("input[name=identifier]"), 60)
    b.shot("logto-sign-in")
    click_text(b, "the create-account link", ["Create account"])
    fill(b, "input[name=identifier]", USER)
    b.shot("logto-register-username")
    click_text(b, "the create-account button", ["Create account"])
    fill(b, "input[name=newPassword]", PASSWORD)
    fill(b, "input[name=confirmPassword]", PASSWORD)
    b.shot("logto-register-password")
    click_text(b, "the save-password button", ["Save password", "Save password and continue", "Continue"])


def logto_sign_in(b):
    b.wait("Logto's sign-in page", lambda: b.d.current_url.startswith(AUTH) and b.visible("input[name=identifier]"), 60)
    fill(b, "input[name=identifier]", USER)
    pw = b.visible("input[name=password]")
    if not pw:
        click_text(b, "the sign-in button", ["Sign in", "Continue"])
    fill(b, "input[name=password]", PASSWORD)
    b.shot("logto-sign-in-password")
    click_text(b, "the sign-in button", ["Sign in", "Continue"])


def consent_if_asked(b):
    """Logto asks for consent on a first sign-in (offline_access); accept it."""
    deadline = time.time() + 60
    while time.time() < deadline:
        if on_lobechat_app(b):
            return
        if b.d.current_url.startswith(AUTH + "/consent"):
            b.shot("logto-consent")
            click_text(b, "the authorize button", ["Authorize", "Continue", "Allow"])
        time.sleep(0.5)


def lobechat_start_sign_in(b):
    b.d.get(LOBE + "/")
    b.wait("LobeChat's sign-in page", lambda: "/signin" in b.d.current_url, 60)
    b.shot("lobechat-signin")
    click_text(b, "Sign in with Logto", ["Sign in with Logto"], 60)


def wait_signed_in(b, what):
    b.wait(what, lambda: on_lobechat_app(b) and b.visible("textarea, [contenteditable=true]"), 120)
    b.shot(what.replace(" ", "-"))


def lobechat_onboarding(b):
    """LobeChat's first-run questions (name, interests, language, default model): the
    defaults, with the anonymous-telemetry switch turned off (air-gapped)."""
    b.wait("LobeChat's onboarding or home", lambda: "/onboarding" in b.d.current_url or b.by_text("Lobe AI"), 60)
    steps = 0
    while "/onboarding" in b.d.current_url and steps < 12:
        steps += 1
        time.sleep(1)
        for sw in b.visible("button[role=switch][aria-checked=true]"):
            sw.click()
        named = [e for t in ("Let's get started", "Next", "Get Started") for e in b.by_text(t, "button")]
        icon = [e for e in b.visible("button") if not e.text.strip()]
        if named:
            b.shot("lobechat-onboarding")
            named[0].click()
        elif icon:
            icon[0].click()
        time.sleep(1.5)
    assert "/onboarding" not in b.d.current_url, "LobeChat's onboarding did not finish"


def open_chat(b):
    """The default agent's chat (Lobe AI), with the configured local model."""
    click_text(b, "the default agent", ["Lobe AI"], 60)
    b.wait("the chat with the local model", lambda: "/agent/" in b.d.current_url and "fake-model" in b.text(), 60)
    b.shot("chat")


def chat_input(b):
    return b.wait("the chat input", lambda: (b.visible("[contenteditable=true]") or b.visible("textarea") or [None])[0], 60)


def upload_image(run):
    b = run.b
    path = os.path.join(run.dir, "pstest-upload.png")
    with open(path, "wb") as f:
        f.write(PNG)
    before = set(run.s3_keys())
    # The paperclip opens "Upload Image / File / Folder"; the image item is there because
    # the model is declared vision-capable (VLLM_MODEL_LIST ...<32000:vision>).
    b.wait("the attach button", lambda: b.visible(".lobe-dropdown-menu-trigger:has(svg.lucide-paperclip)"), 30)[0].click()
    image_input = b.wait("the image upload input", lambda: [
        e for e in b.d.find_elements(By.CSS_SELECTOR, "input[type=file]")
        if (e.get_attribute("accept") or "").startswith("image")], 30)
    image_input[0].send_keys(path)
    new = b.wait("the upload in the bucket", lambda: set(run.s3_keys()) - before, 60)
    key = sorted(new)[0]
    assert run.s3_get(urllib.parse.quote(key)) == PNG, "object %s differs from the upload" % key
    log("upload: presigned PUT through the proxy, object %s read back with the root key (%d bytes)"
        % (key, len(PNG)))
    b.shot("uploaded")
    return key


def send_and_watch_stream(b):
    """Sends MESSAGE; the answer must be seen half-written before it is whole."""
    box = chat_input(b)
    box.click()
    box.send_keys(MESSAGE)
    box.send_keys(Keys.ENTER)
    partial = b.wait("the answer's first words", lambda: ANSWER_START in b.text() and ANSWER_END not in b.text(), 60, 0.05)
    b.shot("answer-streaming")
    b.wait("the whole answer", lambda: ANSWER_END in b.text(), 60)
    b.shot("answer-done")
    log("answer streamed into the page word by word (seen partial, then whole)")
    return partial


def image_loads(b):
    """An <img> served from the bucket route (presigned GET through the proxy) that loaded."""
    imgs = b.d.find_elements(By.CSS_SELECTOR, "img")
    for i in imgs:
        src = i.get_attribute("src") or ""
        if src.startswith(LOBE + "/lobe/") and b.d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", i):
            return src
    return None


def sign_out(b):
    b.d.get(LOBE + "/")
    click_text(b, "the user menu", [USER], 60)
    click_text(b, "Log Out", ["Log Out"])
    b.wait("LobeChat's sign-in page after logging out", lambda: "/signin" in b.d.current_url, 60)
    b.shot("signed-out")
    # A new browser session: Logto must ask for the password again.
    b.d.execute_cdp_cmd("Network.clearBrowserCookies", {})


def history_is_there(b):
    """The first chat, its message, the answer and the image, after a reload."""
    b.d.get(LOBE + "/")
    click_text(b, "the earlier topic", ["Tell me about promet"], 60)
    b.wait("the earlier message and answer", lambda: MESSAGE in b.text() and ANSWER_END in b.text(), 60)
    src = b.wait("the uploaded image (presigned GET through the proxy)", lambda: image_loads(b), 60)
    return src


def step(name):
    log("--- " + name)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifacts", default="target/real-artifacts")
    a = ap.parse_args()
    run = Run(a.artifacts)
    ok = False
    t0 = time.time()
    try:
        step("1. the whole stack from an empty data dir, one config file")
        run.start()
        lobechat_listens_on_loopback_only()
        step("2. a real browser: sign up through Logto, chat, upload, stream")
        run.b = b = Browser(os.path.join(run.dir, "data/pki/ca.crt"), stack.HOSTS,
                            os.path.join(run.artifacts, "screens"))
        lobechat_start_sign_in(b)
        logto_sign_up(b)
        consent_if_asked(b)
        b.wait("LobeChat after sign-up", lambda: on_lobechat_app(b), 120)
        lobechat_onboarding(b)
        log("signed in to LobeChat as %s (registered on Logto's own page)" % USER)
        open_chat(b)
        key = upload_image(run)
        send_and_watch_stream(b)
        calls = [json.loads(line) for line in open(os.path.join(run.dir, "llm.jsonl"))]
        asked = [c for c in calls if c.get("stream") and MESSAGE in c.get("user", "")]
        assert asked, "the model server never got the message: %s" % calls
        assert key.split("/")[-1] in asked[0]["user"], "the model was not given the upload"
        step("3. sign out, sign in again with the same user")
        sign_out(b)
        lobechat_start_sign_in(b)
        logto_sign_in(b)
        consent_if_asked(b)
        b.wait("LobeChat after signing in again", lambda: on_lobechat_app(b), 120)
        src = history_is_there(b)
        b.shot("history-after-sign-in")
        uploads_are_inert_but_images_inline(run, src)
        log("signed in again: the chat, its answer and the image are there (%s...)" % src[:60])
        step("4. SIGKILL LobeChat, Logto, PostgreSQL in turn")
        for unit in ("lobechat", "logto", "postgres"):
            run.kill_and_wait(unit)
            b.wait("LobeChat working after %s came back" % unit, lambda: reload_works(b), 180, 1)
            history_is_there(b)
            b.shot("after-kill-" + unit)
            log("after SIGKILL of %s: page works after reload, chat and image there" % unit)
        assert run.s3_get(urllib.parse.quote(key)) == PNG, "the upload changed"
        ok = True
    except Exception:  # noqa: BLE001 - report everything, keep the artifacts
        traceback.print_exc()
        print(stack.tail(run.daemon_log, 80))
    finally:
        run.finish()
    log("%s in %.0f s; screenshots and daemon log in %s"
        % ("PASSED" if ok else "FAILED", time.time() - t0, run.artifacts))
    sys.exit(0 if ok else 1)


def uploads_are_inert_but_images_inline(run, src):
    """The image the page shows, fetched as the browser did: sandboxed, still inline."""
    r = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "--cacert",
                        os.path.join(run.dir, "data/pki/ca.crt"), "--resolve",
                        "lobe.%s:%d:127.0.0.1" % (stack.DOMAIN, P["https"]), src],
                       capture_output=True, text=True, check=True)
    h = {k.strip().lower(): v.strip() for k, _, v in
         (line.partition(":") for line in r.stdout.splitlines()[1:]) if v}
    assert h.get("content-security-policy", "").startswith("sandbox;"), h
    assert h.get("x-content-type-options") == "nosniff", h
    assert "attachment" not in h.get("content-disposition", ""), h
    assert h.get("content-type") == "image/png", h
    log("the image through the bucket route: sandbox CSP + nosniff, still inline (image/png)")


def reload_works(b):
    """A reload shows the signed-in home page (the user's name) within 20 s."""
    b.d.get(LOBE + "/")
    deadline = time.time() + 20
    while time.time() < deadline:
        if on_lobechat_app(b) and USER in b.text():
            return True
        time.sleep(0.5)
    return False


def lobechat_listens_on_loopback_only():
    """HOSTNAME=localhost must still mean loopback only (the proxy is the way in); the
    real Logto's two ports too (the preset's NODE_OPTIONS preload, security point 2b)."""
    for what in ("lobechat", "logto", "logto_admin"):
        out = subprocess.run(["ss", "-Hltn", "sport = :%d" % P[what]], capture_output=True,
                             text=True, check=True).stdout
        addrs = {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}
        assert addrs == {"127.0.0.1"}, "%s listens on %s, not only 127.0.0.1" % (what, addrs)


if __name__ == "__main__":
    main()
