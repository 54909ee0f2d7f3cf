#!/usr/bin/env python3
"""A small OpenAI-compatible model server on loopback (no GPU here), in vLLM's place:
LobeChat's `vllm` provider is pointed at it through VLLM_PROXY_URL. `POST /v1/chat/completions` with
`stream: true` answers as server-sent events, one word per event, WORD_DELAY apart, so
the test can see the answer arrive in pieces through LobeChat and our proxy.
Every request is appended to --log as one JSON line (path, model, last user message).
Usage: fake_llm.py --port PORT [--log FILE]
"""
import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "fake-model"
WORD_DELAY = 0.3  # long enough for the page to be seen half-written on a loaded machine
ANSWER = ("Hello from the local model. Your words were: {echo}. "
          "This answer streams one word at a time through the proxy.")

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--log")
opts = p.parse_args()


def record(entry):
    if opts.log:
        with open(opts.log, "a") as f:
            f.write(json.dumps(entry) + "\n")


def last_user_text(messages):
    for m in reversed(messages or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                c = " ".join(part.get("text", "") for part in c if isinstance(part, dict))
            return str(c or "")
    return ""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if "/health" not in self.path:  # the daemon probes every second
            sys.stderr.write("fake-llm: %s\n" % (fmt % a))

    def json_reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/health", "/"):
            return self.json_reply(200, {"ok": True})
        if self.path.rstrip("/").endswith("/models"):
            return self.json_reply(200, {"object": "list", "data": [
                {"id": MODEL, "object": "model", "created": 0, "owned_by": "pstest"}]})
        record({"path": self.path, "unexpected": True})
        self.json_reply(404, {"error": {"message": "no route " + self.path}})

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        req = json.loads(self.rfile.read(n) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            record({"path": self.path, "unexpected": True})
            return self.json_reply(404, {"error": {"message": "no route " + self.path}})
        user = last_user_text(req.get("messages"))
        record({"path": self.path, "model": req.get("model"), "stream": req.get("stream"),
                "user": user, "auth": self.headers.get("Authorization", "")[:12]})
        first_line = user.strip().splitlines()[0] if user.strip() else ""
        text = ANSWER.format(echo=" ".join(first_line.split()[:12]) or "(none)")
        if not req.get("stream"):
            return self.json_reply(200, {
                "id": "chatcmpl-pstest", "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model", MODEL),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}]})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def event(delta, finish=None):
            chunk = {"id": "chatcmpl-pstest", "object": "chat.completion.chunk",
                     "created": int(time.time()), "model": req.get("model", MODEL),
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            data = b"data: " + json.dumps(chunk).encode() + b"\n\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        words = text.split(" ")
        for i, w in enumerate(words):
            event({"content": w if i == 0 else " " + w})
            time.sleep(WORD_DELAY)
        event({}, "stop")
        done = b"data: [DONE]\n\n"
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
        self.wfile.flush()


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", opts.port), Handler).serve_forever()
