#!/usr/bin/env python3
"""TEST STAND-IN for an Iceberg REST catalog server.

No REST catalog server (Polaris, Lakekeeper, Nessie, Gravitino) can be
installed from the package registries this project's machines reach, so
floe's REST catalog support is tested against this small server. It speaks
the REST catalog protocol's subset that floe and iceberg-rust's REST client
use, and delegates every decision to pyiceberg's SqlCatalog (SQLite):
table creation, loading, and commits, whose requirements pyiceberg checks
(a failed requirement is HTTP 409, as the spec says).

  GET  /v1/config
  GET  /v1/namespaces                      POST /v1/namespaces
  GET  /v1/namespaces/{ns}                 HEAD /v1/namespaces/{ns}
  GET  /v1/namespaces/{ns}/tables          POST /v1/namespaces/{ns}/tables
  GET  /v1/namespaces/{ns}/tables/{t}      HEAD /v1/namespaces/{ns}/tables/{t}
  POST /v1/namespaces/{ns}/tables/{t}      (commit)

Usage: rest-catalog-standin.py --warehouse file:///dir --db /dir/rest.db
[--port 0] [--token T]; prints the URL it listens on. Run with the python
of scripts/lib/common.sh lake_readers_python.
"""
import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

from pyiceberg.catalog.rest import CreateTableRequest, TableResponse
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.table import CommitTableRequest, CommitTableResponse

UNIT_SEPARATOR = "\x1f"


class Handler(BaseHTTPRequestHandler):
    catalog = None
    token = None
    lock = threading.Lock()
    commits = 0

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def error(self, status, kind, message):
        self.reply(status, {"error": {"message": message, "type": kind, "code": status}})

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length).decode()

    def route(self):
        if self.token and self.headers.get("Authorization") != f"Bearer {self.token}":
            return self.error(401, "NotAuthorizedException", "missing or wrong bearer token")
        parts = [unquote(p) for p in urlparse(self.path).path.strip("/").split("/")]
        if parts[:1] != ["v1"]:
            return self.error(404, "NoSuchEndpoint", self.path)
        parts = parts[1:]
        method = self.command
        try:
            if parts == ["config"]:
                return self.reply(200, {"defaults": {}, "overrides": {}})
            if parts == ["namespaces"]:
                if method == "GET":
                    return self.reply(200, {"namespaces": [list(n) for n in self.catalog.list_namespaces()]})
                req = json.loads(self.body())
                self.catalog.create_namespace(tuple(req["namespace"]), req.get("properties") or {})
                return self.reply(200, {"namespace": req["namespace"], "properties": req.get("properties") or {}})
            if len(parts) == 2 and parts[0] == "namespaces":
                ns = tuple(parts[1].split(UNIT_SEPARATOR))
                props = self.catalog.load_namespace_properties(ns)
                return self.reply(200, {"namespace": list(ns), "properties": props})
            if len(parts) == 3 and parts[0] == "namespaces" and parts[2] == "tables":
                ns = tuple(parts[1].split(UNIT_SEPARATOR))
                if method == "GET":
                    ids = [{"namespace": list(i[:-1]), "name": i[-1]} for i in self.catalog.list_tables(ns)]
                    return self.reply(200, {"identifiers": ids})
                raw = json.loads(self.body())
                for optional in ("location", "partition-spec", "write-order"):
                    raw.setdefault(optional, None)
                req = CreateTableRequest.model_validate(raw)
                options = {"location": req.location, "partition_spec": req.partition_spec, "sort_order": req.write_order}
                table = self.catalog.create_table(
                    ns + (req.name,),
                    schema=req.table_schema,
                    properties=req.properties,
                    **{k: v for k, v in options.items() if v is not None},
                )
                return self.reply(200, table_response(table))
            if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "tables":
                ident = tuple(parts[1].split(UNIT_SEPARATOR)) + (parts[3],)
                table = self.catalog.load_table(ident)
                if method in ("GET", "HEAD"):
                    return self.reply(200, table_response(table))
                req = CommitTableRequest.model_validate_json(self.body())
                # one commit at a time, like a catalog's transaction
                with self.lock:
                    table = self.catalog.load_table(ident)
                    response = self.catalog.commit_table(table, req.requirements, req.updates)
                    Handler.commits += 1
                return self.reply(200, commit_response(response))
            return self.error(404, "NoSuchEndpoint", self.path)
        except (NoSuchNamespaceError, NoSuchTableError) as e:
            return self.error(404, type(e).__name__, str(e))
        except (NamespaceAlreadyExistsError, TableAlreadyExistsError) as e:
            return self.error(409, "AlreadyExistsException", str(e))
        except CommitFailedException as e:
            return self.error(409, "CommitFailedException", str(e))
        except Exception as e:  # a bug here or a bad request: say so
            return self.error(400, "BadRequestException", f"{type(e).__name__}: {e}")

    do_GET = do_POST = do_HEAD = do_DELETE = route


def table_response(table):
    return TableResponse(
        **{"metadata-location": table.metadata_location, "metadata": table.metadata, "config": {}}
    ).model_dump_json(by_alias=True, exclude_none=True)


def commit_response(response: CommitTableResponse):
    return response.model_dump_json(by_alias=True, exclude_none=True)


def main():
    parser = argparse.ArgumentParser(description="TEST STAND-IN Iceberg REST catalog")
    parser.add_argument("--warehouse", required=True)
    parser.add_argument("--db", required=True, help="SQLite file of the backing SqlCatalog")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token")
    args = parser.parse_args()
    Handler.catalog = SqlCatalog("rest", uri=f"sqlite:///{args.db}", warehouse=args.warehouse)
    Handler.token = args.token
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
