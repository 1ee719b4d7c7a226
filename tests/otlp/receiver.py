#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver for the tests: it decodes what arrives on POST /v1/traces
with the official OpenTelemetry protobuf definitions (PyPI package opentelemetry-proto), not
with sluice's encoder, and appends each span as one JSON line to a file.

Usage: receiver.py OUT_FILE [--status CODE]. It listens on a free loopback port and prints
the port on its first line of stdout. Every request is also logged to OUT_FILE.requests as a
JSON line (path, content-type, the names of its headers, the answer's status).
"""

import gzip
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which) if which else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        status = self.server.status
        if self.path != "/v1/traces":
            status = 404
        with open(self.server.out + ".requests", "a") as f:
            f.write(json.dumps({
                "path": self.path,
                "content_type": self.headers.get("content-type"),
                "headers": sorted(k.lower() for k in self.headers.keys()),
                "authorization": self.headers.get("authorization"),
                "status": status,
            }) + "\n")
        if status == 200:
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            req = trace_service_pb2.ExportTraceServiceRequest()
            req.ParseFromString(body)
            lines = []
            for rs in req.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        lines.append(json.dumps({
                            "resource": resource,
                            "scope": ss.scope.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "trace_state": s.trace_state,
                            "name": s.name,
                            "kind": KINDS.get(s.kind, str(s.kind)),
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "attributes": attributes(s.attributes),
                            "events": [
                                {"name": e.name, "time": e.time_unix_nano,
                                 "attributes": attributes(e.attributes)}
                                for e in s.events
                            ],
                            "status": {"code": s.status.code, "message": s.status.message},
                            "flags": s.flags,
                        }))
            with open(self.server.out, "a") as f:
                for line in lines:
                    f.write(line + "\n")
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            content_type = "application/x-protobuf"
        else:
            answer = b"unavailable"
            content_type = "text/plain"
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def main():
    out = sys.argv[1]
    status = 200
    if "--status" in sys.argv:
        status = int(sys.argv[sys.argv.index("--status") + 1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.out = out
    server.status = status
    open(out, "a").close()
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
