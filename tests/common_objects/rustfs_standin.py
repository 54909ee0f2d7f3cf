"""Stand-in for the `rustfs` binary (RustFS cannot be built here in CI time).

Checks the command line and env the rustfs preset builds (`--address 127.0.0.1:PORT DIR`,
RUSTFS_ACCESS_KEY / RUSTFS_SECRET_KEY), then serves moto's S3 API on that address with
RustFS's `GET /health` -> 200. Requests signed (header or presigned query) with another
access key than RUSTFS_ACCESS_KEY are refused (403), so a client must use the root key it
was given; unsigned requests go to moto as they are (moto applies the bucket policy to
anonymous object reads).
Records what it was started with in DIR/standin.json.
"""
import json
import os
import re
import sys

# RustFS without RUSTFS_SERVER_DOMAINS is path-style only, whatever the Host header says
# (here the app origin's host, passed through by our proxy); moto must be told so.
os.environ["S3_IGNORE_SUBDOMAIN_BUCKETNAME"] = "true"

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

from rustfs_cli import parse  # noqa: E402 (after the env moto reads at import)

port, data, key, secret = parse()
with open(os.path.join(data, "standin.json"), "w") as f:
    json.dump({"argv": sys.argv[1:], "access_key": key, "secret_key": secret,
               "env": {k: v for k, v in os.environ.items() if k.startswith("RUSTFS_")}}, f)

s3 = DomainDispatcherApplication(create_backend_app)
cred = re.compile(r"Credential=([^/&%]+)(/|%2F)")


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/health":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    signed = environ.get("HTTP_AUTHORIZATION", "") + " " + environ.get("QUERY_STRING", "")
    m = cred.search(signed)
    if "Credential=" in signed and (not m or m.group(1) != key):
        start_response("403 Forbidden", [("Content-Type", "application/xml")])
        return [b"<Error><Code>InvalidAccessKeyId</Code><Message>not the root key</Message></Error>"]
    return s3(environ, start_response)


run_simple("127.0.0.1", port, app, threaded=True)
