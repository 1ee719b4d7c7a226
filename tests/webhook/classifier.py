"""A small classifier service for the webhook guardrail tests, run by the test harness.

Usage: classifier.py PORT

POST /check   the guardrail contract: blocks any text containing "forbidden-marker" (kind
              "test_marker"), redacts every "redact-me" (kind "test_span"), allows the rest.
              Requests are recorded (body, and whether the authorization header was the
              expected one: the value of WEBHOOK_EXPECT_AUTH).
GET /requests the recorded requests, as a JSON list.
GET /mode/M   how the next calls are answered: normal, slow (3 s), error (500), garbage.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": "normal", "requests": []}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/requests":
            with LOCK:
                return self.reply(200, json.dumps(STATE["requests"]))
        if self.path.startswith("/mode/"):
            with LOCK:
                STATE["mode"] = self.path[len("/mode/"):]
            return self.reply(200, "{}")
        self.reply(404, "{}")

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length))
        expected = os.environ.get("WEBHOOK_EXPECT_AUTH")
        with LOCK:
            STATE["requests"].append(
                {"body": body, "auth_ok": self.headers.get("authorization") == expected}
            )
            mode = STATE["mode"]
        if mode == "slow":
            time.sleep(3)
        elif mode == "error":
            return self.reply(500, "{}")
        elif mode == "garbage":
            return self.reply(200, "this is not a verdict", "text/plain")
        self.reply(200, json.dumps(classify(body["texts"])))


def classify(texts):
    if any("forbidden-marker" in t for t in texts):
        return {"verdict": "block", "kind": "test_marker", "reason": "marker seen"}
    spans = []
    for i, t in enumerate(texts):
        start = t.find("redact-me")
        while start >= 0:
            spans.append({"text": i, "start": start, "end": start + 9, "kind": "test_span"})
            start = t.find("redact-me", start + 9)
    if spans:
        return {"verdict": "redact", "findings": spans}
    return {"verdict": "allow"}


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
