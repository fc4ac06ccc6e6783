"""The local alert sink: the bundled stack's stand-in for a team's webhook
and mailbox, so an engineer trying the stack (and the tests) see exactly what
a person would receive.

- SMTP on :2525 (Debian's python3-aiosmtpd): every message Alertmanager mails
  is kept, headers and body.
- HTTP on :9099: ``POST /webhook/<name>`` keeps the JSON body as received
  (``generic``: Alertmanager's webhook payload, ``slack``: its Slack payload);
  ``GET /messages`` returns everything kept (``{"webhooks": [...], "mail":
  [...]}``), ``GET /healthz`` answers ``ok``. GET /messages asks for the
  monitoring credential (basic auth, ``MONITORING_USER`` /
  ``MONITORING_PASSWORD``): alerts name services and hosts.

Everything is appended, one JSON object a line, to ``mail.jsonl`` and
``webhooks.jsonl`` in ``SINK_DIR`` (a volume), the newest ``SINK_KEEP`` kept.
"""

from __future__ import annotations

import base64
import email
import email.policy
import hmac
import json
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from platform_services.monitoring.render import ConfigError, monitoring_password

log = logging.getLogger("alert_sink")

SINK_DIR = Path(os.environ.get("SINK_DIR", "/var/lib/monitoring/sink"))
KEEP = int(os.environ.get("SINK_KEEP", "1000"))
_lock = threading.Lock()


def append(kind: str, record: dict[str, Any]) -> None:
    path = SINK_DIR / f"{kind}.jsonl"
    with _lock:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        lines.append(json.dumps(record, sort_keys=True))
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines[-KEEP:]) + "\n", encoding="utf-8")
        tmp.replace(path)


def read(kind: str) -> list[dict[str, Any]]:
    path = SINK_DIR / f"{kind}.jsonl"
    with _lock:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def mail_record(envelope_from: str, rcpt: list[str], data: bytes) -> dict[str, Any]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    body = ""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            body = str(part.get_content())
            break
    if not body:
        html = msg.get_body(preferencelist=("html",))
        body = str(html.get_content()) if html is not None else ""
    return {
        "received_at": time.time(),
        "mail_from": envelope_from,
        "rcpt_to": rcpt,
        "subject": str(msg.get("Subject", "")),
        "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")),
        "body": body,
    }


class SmtpHandler:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rec = mail_record(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        append("mail", rec)
        log.info("mail %r to %s", rec["subject"], ",".join(rec["rcpt_to"]))
        return "250 Message accepted for delivery"


def _authorised(header: str | None) -> bool:
    try:  # MONITORING_PASSWORD, or on Swarm the secret MONITORING_PASSWORD_FILE names
        password = monitoring_password(os.environ)
    except ConfigError:
        return False
    user = os.environ.get("MONITORING_USER", "stackdeck")
    if not password:
        return False
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    return hmac.compare_digest((header or "").encode(), expected.encode())


class HttpHandler(BaseHTTPRequestHandler):
    server_version = "alert_sink"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)

    def _send(self, code: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, "ok")
        elif self.path == "/messages":
            if not _authorised(self.headers.get("Authorization")):
                self._send(
                    401,
                    {"detail": "credential required"},
                    {"WWW-Authenticate": 'Basic realm="alert_sink"'},
                )
                return
            self._send(200, {"webhooks": read("webhooks"), "mail": read("mail")})
        else:
            self._send(404, {"detail": "not found"})

    def do_POST(self) -> None:
        if not self.path.startswith("/webhook/"):
            self._send(404, {"detail": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1_000_000))
        try:
            payload = json.loads(raw or b"null")
        except ValueError:
            self._send(400, {"detail": "body is not JSON"})
            return
        append(
            "webhooks",
            {
                "received_at": time.time(),
                "channel": self.path.removeprefix("/webhook/"),
                "body": payload,
            },
        )
        log.info("webhook %s", self.path)
        self._send(200, {"ok": True})


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from aiosmtpd.controller import Controller

    SINK_DIR.mkdir(parents=True, exist_ok=True)
    smtp = Controller(
        SmtpHandler(), hostname="0.0.0.0", port=int(os.environ.get("SMTP_PORT", "2525"))
    )
    smtp.start()
    http = ThreadingHTTPServer(
        ("0.0.0.0", int(os.environ.get("SINK_HTTP_PORT", "9099"))), HttpHandler
    )
    log.info("alert sink: smtp :%d, http :%d, kept in %s", smtp.port, http.server_port, SINK_DIR)
    try:
        http.serve_forever()
    finally:
        smtp.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(0)
