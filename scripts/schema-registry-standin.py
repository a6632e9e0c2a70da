#!/usr/bin/env python3
"""TEST STAND-IN for a Confluent Schema Registry. Not for production.

No Confluent-compatible registry server can be installed on floe's build
machines, so tests and the fixture recorder use this small HTTP server. It
implements only what the real clients call:

* Confluent's Java serializer (Debezium through Kafka Connect's AvroConverter):
  ``POST /subjects/{subject}/versions`` -> ``{"id": N}``
* deserializers (floe's own client, Confluent's Java client):
  ``GET /schemas/ids/{id}``, ``POST /subjects/{subject}`` (look-up),
  ``GET /subjects``, ``GET /subjects/{subject}/versions[/{version|latest}]``.

Identical schemas registered under different subjects share one global id,
as in the real registry. Errors use Confluent's ``error_code`` shape (40401
subject not found, 40403 schema not found). With ``--state-file`` every
registration is written out as JSON, which the fixture recorder commits
beside the recorded messages; ``--load`` serves a previously written state.

Usage: schema-registry-standin.py --port 8081 [--state-file F] [--load F]
                                  [--basic-auth user:password]
                                  [--tls-cert cert.pem --tls-key key.pem]

``--port 0`` picks a free port; the first line printed names the URL.
"""

import argparse
import base64
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class Registry:
    def __init__(self, state_file=None):
        self.lock = threading.Lock()
        self.schemas = {}  # id -> schema text
        self.by_canonical = {}  # canonical text -> id
        self.subjects = {}  # subject -> [id, ...] (index = version - 1)
        self.state_file = state_file

    @staticmethod
    def canonical(text):
        try:
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        except ValueError:
            return text

    def register(self, subject, text):
        with self.lock:
            canon = self.canonical(text)
            sid = self.by_canonical.get(canon)
            if sid is None:
                sid = len(self.schemas) + 1
                self.schemas[sid] = text
                self.by_canonical[canon] = sid
            versions = self.subjects.setdefault(subject, [])
            if sid not in versions:
                versions.append(sid)
                self._save()
            return sid

    def lookup(self, subject, text):
        with self.lock:
            sid = self.by_canonical.get(self.canonical(text))
            versions = self.subjects.get(subject)
            if versions is None:
                return None, 40401
            if sid is None or sid not in versions:
                return None, 40403
            return (sid, versions.index(sid) + 1), None

    def _save(self):
        if not self.state_file:
            return
        state = {
            "schemas": {str(k): v for k, v in sorted(self.schemas.items())},
            "subjects": self.subjects,
        }
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        import os

        os.replace(tmp, self.state_file)

    def load(self, path):
        with open(path) as f:
            state = json.load(f)
        for sid, text in state["schemas"].items():
            self.schemas[int(sid)] = text
            self.by_canonical[self.canonical(text)] = int(sid)
        self.subjects = {k: list(v) for k, v in state["subjects"].items()}


def make_handler(registry, auth):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # quiet: tests read stdout
            pass

        def reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status, code, message):
            self.reply(status, {"error_code": code, "message": message})

        def authorized(self):
            if auth is None:
                return True
            header = self.headers.get("Authorization", "")
            if header == "Basic " + base64.b64encode(auth.encode()).decode():
                return True
            self.error(401, 401, "Unauthorized")
            return False

        def body(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b"{}"
            return json.loads(raw or b"{}")

        def do_GET(self):
            if not self.authorized():
                return
            path = urlparse(self.path).path.rstrip("/")
            if path in ("", "/config"):
                return self.reply(200, {"compatibilityLevel": "NONE"})
            m = re.fullmatch(r"/schemas/ids/(\d+)", path)
            if m:
                text = registry.schemas.get(int(m.group(1)))
                if text is None:
                    return self.error(404, 40403, "Schema %s not found" % m.group(1))
                return self.reply(200, {"schema": text})
            if path == "/subjects":
                return self.reply(200, sorted(registry.subjects))
            m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
            if m:
                versions = registry.subjects.get(m.group(1))
                if versions is None:
                    return self.error(404, 40401, "Subject not found")
                return self.reply(200, list(range(1, len(versions) + 1)))
            m = re.fullmatch(r"/subjects/([^/]+)/versions/(\w+)", path)
            if m:
                versions = registry.subjects.get(m.group(1))
                if versions is None:
                    return self.error(404, 40401, "Subject not found")
                v = len(versions) if m.group(2) == "latest" else int(m.group(2))
                if not 1 <= v <= len(versions):
                    return self.error(404, 40402, "Version not found")
                sid = versions[v - 1]
                return self.reply(
                    200,
                    {"subject": m.group(1), "version": v, "id": sid, "schema": registry.schemas[sid]},
                )
            self.error(404, 404, "HTTP 404 Not Found")

        def do_POST(self):
            if not self.authorized():
                return
            path = urlparse(self.path).path.rstrip("/")
            try:
                req = self.body()
            except ValueError:
                return self.error(422, 42201, "Invalid JSON body")
            m = re.fullmatch(r"/subjects/([^/]+)/versions", path)
            if m:
                if "schema" not in req:
                    return self.error(422, 42201, "Missing schema")
                return self.reply(200, {"id": registry.register(m.group(1), req["schema"])})
            m = re.fullmatch(r"/subjects/([^/]+)", path)
            if m:
                found, code = registry.lookup(m.group(1), req.get("schema", ""))
                if found is None:
                    return self.error(404, code, "Subject or schema not found")
                sid, version = found
                return self.reply(
                    200,
                    {"subject": m.group(1), "version": version, "id": sid, "schema": registry.schemas[sid]},
                )
            self.error(404, 404, "HTTP 404 Not Found")

        def do_PUT(self):
            if not self.authorized():
                return
            self.body()
            self.reply(200, {"compatibility": "NONE"})

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--state-file")
    p.add_argument("--load")
    p.add_argument("--basic-auth", help="user:password required on every request")
    p.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    p.add_argument("--tls-key", help="private key (PEM) for --tls-cert")
    args = p.parse_args()
    registry = Registry(args.state_file)
    if args.load:
        registry.load(args.load)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(registry, args.basic_auth))
    scheme = "http"
    if args.tls_cert:
        import ssl

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    print("schema registry stand-in listening on %s://%s:%d" % (scheme, args.host, server.server_port), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
