"""Headless Chromium (Debian's) driven by Selenium, trusting the stack's CA the way an
operator's browser would: the CA imported into the profile's NSS database with certutil
(no --ignore-certificate-errors). Both hosts resolve to 127.0.0.1 in the browser only
(--host-resolver-rules). Run with Debian's /usr/bin/python3 (python3-selenium)."""
import os
import subprocess
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def nss_trust(home, ca):
    """A fresh NSS database in HOME/.pki/nssdb with `ca` as a trusted CA for TLS."""
    db = os.path.join(home, ".pki", "nssdb")
    os.makedirs(db, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", "sql:" + db, "--empty-password"], check=True)
    subprocess.run(["certutil", "-A", "-d", "sql:" + db, "-t", "C,,", "-n", "prometheus-stack",
                    "-i", ca], check=True)
    out = subprocess.run(["certutil", "-L", "-d", "sql:" + db], check=True,
                         capture_output=True, text=True).stdout
    assert "prometheus-stack" in out, out


class Browser:
    """One Chromium with its own profile and HOME; screenshots go to `shots`."""

    def __init__(self, ca, hosts, shots):
        self.home = tempfile.mkdtemp(prefix="pstest-chromium-")
        nss_trust(self.home, ca)
        os.environ["HOME"] = self.home  # Chromium reads HOME/.pki/nssdb
        self.shots = shots
        self.n = 0
        os.makedirs(shots, exist_ok=True)
        o = webdriver.ChromeOptions()
        o.binary_location = "/usr/bin/chromium"
        for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                  "--user-data-dir=" + os.path.join(self.home, "profile"),
                  "--host-resolver-rules=" + ", ".join("MAP %s 127.0.0.1" % h for h in hosts)]:
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
        self.d.set_page_load_timeout(90)

    def shot(self, name):
        self.n += 1
        path = os.path.join(self.shots, "%02d-%s.png" % (self.n, name))
        self.d.save_screenshot(path)
        return path

    def wait(self, what, cond, timeout=60, every=0.3):
        """Polls `cond()` until truthy; on timeout, a screenshot and the page's URL/text."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                v = cond()
                if v:
                    return v
            except (StaleElementReferenceException, WebDriverException) as e:
                last = e
            time.sleep(every)
        path = self.shot("timeout-" + what.replace(" ", "-")[:40])
        body = ""
        try:
            body = self.d.find_element(By.TAG_NAME, "body").text[:1500]
        except WebDriverException:
            pass
        raise AssertionError("timed out (%ss) waiting for %s at %s (screenshot %s; last error %s)\n%s"
                             % (timeout, what, self.d.current_url, path, last, body))

    def visible(self, css):
        """Displayed elements matching `css` (one round trip, like `by_text`)."""
        return self.d.execute_script("""
            return [...document.querySelectorAll(arguments[0])].filter((e) => {
              const r = e.getBoundingClientRect();
              return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
            });""", css)

    def by_text(self, text, tags="button,a,span,div"):
        """Displayed elements whose own text is exactly `text`, innermost first (one
        round trip: asking the driver element by element takes seconds on LobeChat's pages)."""
        return self.d.execute_script("""
            const [text, tags] = arguments;
            const hits = [...document.querySelectorAll(tags)].filter((e) => {
              if ((e.innerText || '').trim() !== text) return false;
              const r = e.getBoundingClientRect();
              return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden';
            });
            return hits.reverse();""", text, tags)

    def text(self):
        return self.d.find_element(By.TAG_NAME, "body").text

    def quit(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass
