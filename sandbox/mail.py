"""The sandbox's local SMTP server and its mailbox page: every mail the client area sends lands here.

``Mailbox`` runs an aiosmtpd server on loopback (in its own thread) and keeps the messages in memory; the
sandbox's HTTP server shows them at ``/mail/`` (a list, newest first) and ``/mail/<n>`` (one message, as text).
Tests use the same class on a free port.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from sandbox.httpd import Request, Response, Route


@dataclass(frozen=True)
class Mail:
    number: int
    received_at: float
    sender: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    raw: bytes


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mailbox._store(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.content))
        return "250 Message accepted for delivery"


class Mailbox:
    """An SMTP server on ``host:port`` (0: a free port) keeping every message it accepts."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._lock = threading.Lock()
        self._mails: list[Mail] = []
        self._arrived = threading.Condition(self._lock)
        self._controller = Controller(_Handler(self), hostname=host, port=port or _free_port(host))
        self.port = self._controller.port

    def start(self) -> None:
        self._controller.start()
        self._started = True

    def stop(self) -> None:
        if getattr(self, "_started", False):
            self._started = False
            self._controller.stop()

    def _store(self, sender: str, recipients: tuple[str, ...], raw: bytes) -> None:
        message = message_from_bytes(raw, policy=policy.default)
        body = ""
        if isinstance(message, EmailMessage):
            part = message.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
        with self._arrived:
            mail = Mail(
                len(self._mails) + 1,
                time.time(),
                sender,
                recipients,
                str(message["subject"] or ""),
                body,
                raw,
            )
            self._mails.append(mail)
            self._arrived.notify_all()

    def mails(self, to: str | None = None) -> list[Mail]:
        with self._lock:
            return [m for m in self._mails if to is None or to.lower() in (r.lower() for r in m.recipients)]

    def wait_for(
        self, *, to: str, subject_contains: str = "", count: int = 1, timeout: float = 10.0
    ) -> list[Mail]:
        """The mails to ``to`` (with the subject text), once there are ``count`` of them; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                found = [
                    m
                    for m in self._mails
                    if to.lower() in (r.lower() for r in m.recipients) and subject_contains in m.subject
                ]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no mail to {to} with {subject_contains!r}")
                self._arrived.wait(left)

    # --- the mailbox page ---
    def routes(self) -> list[Route]:
        return [("GET", "/mail/", self.page), ("GET", "/mail/*", self.one)]

    def page(self, request: Request) -> Response:
        mails = list(reversed(self.mails()))
        rows = [
            {
                "number": m.number,
                "at": time.strftime("%H:%M:%S", time.localtime(m.received_at)),
                "to": ", ".join(m.recipients),
                "subject": m.subject,
                "body": m.body,
            }
            for m in mails
        ]
        return Response.page("sandbox/mail.html", {"mails": rows, "smtp": f"{self.host}:{self.port}"})

    def one(self, request: Request) -> Response:
        tail = request.path.rsplit("/", 1)[-1]
        mails = self.mails()
        if not tail.isdigit() or not 1 <= int(tail) <= len(mails):
            return Response.html("<p>No such mail.</p>", 404)
        return Response(200, mails[int(tail) - 1].raw, {"Content-Type": "text/plain; charset=utf-8"})


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
