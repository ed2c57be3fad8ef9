"""What stands between the page and a stranger (docs/web.md, "Security").

* **Loopback by default.** Another address is refused at ``config check`` and start-up unless
  ``web_token`` is set (``pixcamd.daemon.config_checks.web_problems``).
* **The token**, when set, guards every request: HTTP Basic (any user name, the token as the
  password — the browser asks once) or ``Authorization: Bearer TOKEN`` (scripts).
* **Host header**: on a loopback address without a token only loopback names are answered, so
  a web site that rebinds its DNS name to 127.0.0.1 cannot read the page.
* **CSRF**: every state-changing request is a POST carrying the per-install secret
  (``web-secret`` in the state dir, made once, mode 0600), embedded in the pages; a missing or
  wrong one is 403. A cross-site page cannot read it (same-origin policy, no CORS).
* **Paths**: URLs name photos by ledger id; a request whose raw path holds ``..``, a
  backslash, an encoded slash, dot, backslash or NUL is 404 before any route sees it.
* **Headers**: a strict CSP (``default-src 'self'``: the page's own CSS and JS only), nosniff,
  no framing, no referrer to other sites; pages and data are never cached.
"""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from pathlib import Path

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse

from pixcamd.daemon.config_checks import is_loopback
from pixcamd.errors import PixcamdError

SECRET_FILE = "web-secret"
CSP = (
    "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # not no-referrer: with it browsers send "Origin: null" on the page's own forms
    "referrer-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
# raw (still percent-encoded) path fragments no URL of ours contains
_BAD_PATH = (b"..", b"\\", b"%2f", b"%5c", b"%2e", b"%00", b"\x00")


def csrf_secret(state_dir: Path) -> str:
    """The per-install secret: read, or made once (0600) — the daemon and ``pixcamd web`` on
    the same state dir share it."""
    path = state_dir / SECRET_FILE
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)  # ours alone, whatever a copy or an umask made of it
            text = path.read_text().strip()
        else:
            text = secrets.token_urlsafe(32)
            with os.fdopen(fd, "w") as fp:
                fp.write(text + "\n")
    except OSError as exc:
        raise PixcamdError(
            f"cannot read or create the web page's secret {path} ({exc}); run it as the "
            "daemon's user"
        ) from exc
    if len(text) < 32:
        raise PixcamdError(f"{path}: the web page's secret is damaged; delete the file")
    return text


def token_ok(headers: Headers, token: str) -> bool:
    """HTTP Basic with the token as password (any user), or a bearer token."""
    kind, _, value = headers.get("authorization", "").partition(" ")
    # compared as bytes: Starlette decodes a header as Latin-1, so its own bytes come back by
    # encoding it so, and a token beyond ASCII is matched as the UTF-8 a client sends
    if kind.lower() == "bearer":
        given = value.strip().encode("latin-1")
    elif kind.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).partition(b":")[2]
        except ValueError:  # not base64 (binascii.Error), or not ASCII at all
            return False
    else:
        return False
    return hmac.compare_digest(given, token.encode())


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rpartition(":")[0] if host.count(":") == 1 else host


class Guard:
    """ASGI middleware in front of every route: path tricks, Host, token, security headers."""

    def __init__(self, app, token: str, loopback: bool):
        self.app, self.token, self.loopback = app, token, loopback

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        raw = (scope.get("raw_path") or scope["path"].encode()).split(b"?")[0].lower()
        refusal = None
        if any(bad in raw for bad in _BAD_PATH):
            refusal = PlainTextResponse("not found\n", 404)
        elif (
            self.loopback
            and not self.token
            and not is_loopback(_host_name(headers.get("host", "")))
        ):  # DNS rebinding: a foreign name that resolves to us
            refusal = PlainTextResponse("this page answers only to localhost\n", 403)
        elif self.token and not token_ok(headers, self.token):
            refusal = PlainTextResponse(
                "the page's password (web_token) is needed\n",
                401,
                headers={"www-authenticate": 'Basic realm="pixcamd", charset="UTF-8"'},
            )
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                extra = dict(SECURITY_HEADERS)
                extra["cache-control"] = "private, max-age=3600" if static else "no-store"
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present
                ]
            await send(message)

        if refusal is not None:
            return await refusal(scope, receive, send_with_headers)
        return await self.app(scope, receive, send_with_headers)
