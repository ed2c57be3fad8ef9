"""The routes (docs/web.md lists them). Pages are rendered on the server (Jinja2, autoescaped);
the dashboard's script polls ``/api/status`` — the same data as ``pixcamd status --json``
(``pixcamd.daemon.status.gather``) — and every action is a plain HTML form POST, so the page
works without its scripts too.

Handlers that touch files or the ledger are plain functions Starlette runs in its thread pool:
an image being made never holds up the event loop, and nothing here ever waits for the daemon's
worker (they share only the ledger, whose transactions are short).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pixcamd.daemon import decisions, retry
from pixcamd.daemon.config import Config
from pixcamd.daemon.events import printable
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_file import held_elsewhere
from pixcamd.daemon.ledger_row import Row
from pixcamd.daemon.status import gather
from pixcamd.errors import PhotoError, PixcamdError
from pixcamd.report import score_text
from pixcamd.web import files, pages
from pixcamd.web.security import Guard, csrf_secret, same

STATIC = Path(__file__).resolve().parent / "static"
PAGE_SIZE = 60
MAX_FORM = 4096  # an action's form is one hidden field
MAX_NAME = 200  # characters of a name looked for in the photo list
SQLITE_MAX = 2**63 - 1
MAX_PAGE = SQLITE_MAX // PAGE_SIZE  # beyond it the list's OFFSET is no SQLite integer
VIA = "the web page"
NO_IMAGE = (
    "This photo has no such image now: its copy was removed or shipped since the page was "
    "made, or its original left the inbox."
)
DONE = {  # what a finished action says on the photo page, once (``Notices``)
    "retry": "Queued again: the daemon takes it within a second (or at its next start).",
    # queued meanwhile (put back into the inbox): it will be protected, as asked — what
    # `pixcamd retry` says of it too, with exit status 0
    "queued": "Already queued: the daemon protects it as asked, nothing changed.",
    "stronger": "Queued again with a larger budget (ε, its cap and the steps doubled).",
    "ship": "Shipped to the outbox by your decision, NOT protected.",
    # (the event says which: deleted now, or already taken by the uploader)
    "remove": "The copy is out of the outbox and forgotten.",
}


class Web:
    """The page's state: the config, its own ledger connection, the secret, the image cache."""

    def __init__(self, config: Config, ledger: Ledger, log=None):
        self.config, self.ledger, self.log = config, ledger, log  # log: the daemon's, beside it
        self.secret = csrf_secret(config.state_dir)
        self.cache = files.Cache(config.state_dir / "web-cache")
        self.env = Environment(
            loader=PackageLoader("pixcamd.web", "templates"),
            autoescape=select_autoescape(default=True),
        )
        self.env.filters["printable"] = printable
        self.env.filters["score"] = score_text
        # a link's query: what is empty is left out (``/photos?verdict=all``, no ``name=``)
        self.env.filters["query"] = lambda q: urlencode({k: v for k, v in q.items() if v != ""})
        self.env.globals.update(csrf=self.secret, when=pages.when)
        self.notices = Notices()

    def html(self, name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(self.env.get_template(name).render(**context), status)

    def error(self, status: int, message: str) -> HTMLResponse:
        """An error page: its title and heading say what kind ("not found"), so a tab or a
        screen reader's list of pages tells it from the page it was after."""
        heading = HTTPStatus(status).phrase.lower()
        return self.html("error.html", status, heading=heading, message=message)

    def row(self, request: Request) -> Row:
        ident = request.path_params["id"]
        # the route takes any run of digits; SQLite's integers end at 2**63 - 1
        row = self.ledger.by_id(ident) if ident <= SQLITE_MAX else None
        if row is None:
            raise _NotFound(
                "No such photo: it was never in the ledger, or its row is gone (a photo whose "
                "original left the inbox is forgotten at the daemon's next scan)."
            )
        return row


class Notices:
    """What a form's action did, or why it was refused, kept until the photo page has shown it
    once. The POST answers with a redirect either way, so reloading the page never sends the
    form again, and neither a reload, a bookmark nor a hand-made URL can make the page claim an
    action that did not happen now; the URL carries a random key, never the text."""

    LIMIT = 64  # unread ones beyond this are dropped, oldest first

    def __init__(self):
        self._said: dict[str, str] = {}
        self._lock = threading.Lock()

    def keep(self, text: str) -> str:
        key = secrets.token_urlsafe(12)
        with self._lock:
            self._said[key] = text
            while len(self._said) > self.LIMIT:
                del self._said[next(iter(self._said))]
        return key

    def take(self, key: str) -> str | None:
        with self._lock:
            return self._said.pop(key, None)


class _NotFound(Exception):
    """404, with what a browser's page says (an image of a photo that is there, by default)."""

    def __init__(self, message: str = NO_IMAGE):
        super().__init__(message)


def create_app(
    config: Config,
    ledger: Ledger,
    token: str = "",
    loopback: bool = True,
    log=None,
    page: Web | None = None,
):
    """The ASGI app: routes behind ``security.Guard``. ``log``: the daemon's event log where
    the page runs inside it (its decisions are then said as its own events are); ``page``: its
    state, made here where none is given (the daemon's: a reload gives it the config in
    force, ``WebServer.reconfigure``)."""
    web = page if page is not None else Web(config, ledger, log)

    def dashboard(request: Request) -> Response:
        try:
            status, problem = gather(config, events=20, photos=0), None
        except PixcamdError as exc:
            status, problem = None, str(exc)
        return web.html("dashboard.html", s=status, problem=problem)

    def api_status(request: Request) -> Response:
        try:
            return JSONResponse(gather(config, events=20, photos=0))
        except PixcamdError as exc:
            return JSONResponse({"error": str(exc)}, 503)

    def photo_list(request: Request) -> Response:
        verdict = request.query_params.get("verdict", "all")
        page = request.query_params.get("page", "1")
        name = request.query_params.get("name", "").strip()
        number = _ascii_int(page) or 0
        if verdict not in pages.FILTERS or not 1 <= number <= MAX_PAGE:
            return web.error(
                400,
                f"unknown filter: choose verdict from {', '.join(pages.FILTERS)} "
                f"and a page number from 1 to {MAX_PAGE}",
            )
        if len(name) > MAX_NAME or not name.isprintable():
            return web.error(
                400,
                f"a name to look for is at most {MAX_NAME} printable characters",
            )
        states = pages.FILTERS[verdict][1]
        offset = (number - 1) * PAGE_SIZE
        rows = ledger.finished_rows(states, PAGE_SIZE + 1, offset, name)
        total = ledger.count_listed(states, name)
        return web.html(
            "photos.html",
            photos=[pages.summary(r) for r in rows[:PAGE_SIZE]],
            verdict=verdict,
            filters=pages.FILTERS,
            looked_for=name,
            page=number,
            pages=max(1, -(-total // PAGE_SIZE)),
            total=total,
            more=len(rows) > PAGE_SIZE,
        )

    def photo_page(request: Request) -> Response:
        row = web.row(request)
        copy = files.copy_file(config, row)
        info = pages.detail(
            config, row, files.original_file(config, row) is not None, copy and copy[1]
        )
        done = web.notices.take(request.query_params.get("done", ""))
        said = web.notices.take(request.query_params.get("refused", ""))
        return web.html("photo.html", p=info, done=done, problem=said)

    def not_found(request: Request, exc: Exception) -> Response:
        """A page asked for by a browser gets a page with a way back; images and scripts get
        the bare status."""
        if "text/html" not in request.headers.get("accept", ""):
            return Response("not found\n", 404, media_type="text/plain")
        message = str(exc) if isinstance(exc, _NotFound) else "No such page."
        return web.error(404, message)

    def original(request: Request) -> Response:
        row = web.row(request)
        path = files.original_file(config, row)
        if path is None:
            raise _NotFound()
        key = f"orig-{row.id}-{files.identity(path)}.png"
        return _image(lambda: web.cache.get(key, lambda: files.png(_decode(path))), "image/png")

    def copy(request: Request) -> Response:
        found = files.copy_file(config, web.row(request))
        if found is None:
            raise _NotFound()
        return FileResponse(found[0], media_type="image/jpeg")

    def thumb(request: Request) -> Response:
        row = web.row(request)
        found = files.copy_file(config, row)
        path = found[0] if found else files.original_file(config, row)
        if path is None:
            raise _NotFound()
        key = f"thumb-{row.id}-{files.identity(path)}.jpg"
        make = lambda: files.thumbnail(path, config.max_pixels)  # noqa: E731
        return _image(lambda: web.cache.get(key, make), "image/jpeg")

    def diff(request: Request) -> Response:
        row = web.row(request)
        found, source = files.copy_file(config, row), files.original_file(config, row)
        if found is None or source is None:
            raise _NotFound()
        key = f"diff-{row.id}-{files.identity(source)}-{files.identity(found[0])}.png"
        make = lambda: files.difference(source, found[0], config.max_pixels)  # noqa: E731
        return _image(lambda: web.cache.get(key, make), "image/png")

    def _decode(path: Path):
        return files.decode(path, config.max_pixels)

    def _image(get, media_type: str) -> Response:
        try:
            return FileResponse(get(), media_type=media_type)
        except (PhotoError, ValueError, OSError) as exc:
            return Response(f"cannot show this image: {exc}\n", 422, media_type="text/plain")

    def act(kind: str):
        async def handler(request: Request) -> Response:
            if not _same_origin(request):  # before the body: a foreign page's upload is not read
                return _forged()
            body = await _small_body(request)
            if body is None:
                return Response("form too large\n", 413, media_type="text/plain")
            form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
            if not same(form.get("csrf") or request.headers.get("x-csrf-token"), web.secret):
                return _forged()
            url = request.url_for("photo", id=request.path_params["id"]).path
            script = "csrf" not in form  # the secret in a header: the answer itself, as text
            try:
                said = await run_in_threadpool(_decide_said, kind, web.row(request))
            except PixcamdError as exc:
                if script:
                    return Response(f"{exc}\n", 409, media_type="text/plain")
                return RedirectResponse(f"{url}?refused={web.notices.keep(str(exc))}", 303)
            if script:  # "Already queued" and "Queued again" told apart without the page
                return Response(f"{DONE[said]}\n", 200, media_type="text/plain")
            return RedirectResponse(f"{url}?done={web.notices.keep(DONE[said])}", 303)

        return handler

    def _decide_said(kind: str, row: Row) -> str:
        """``_decide``, a ledger another process holds refused in words (not a 500)."""
        try:
            return _decide(kind, row)
        except sqlite3.OperationalError as exc:
            refusal = held_elsewhere(exc)
            if refusal is None:
                raise
            raise refusal from None

    def _decide(kind: str, row: Row) -> str:
        """The CLI's own operations (pixcamd retry / ship / remove), with the config in force:
        inside the daemon, a reload's (strip_metadata turned on: a held copy made with more is
        refused, as `pixcamd ship` refuses it). What it did: a key of ``DONE``."""
        config = web.config
        if kind in ("retry", "stronger"):
            budget = retry.stronger(config) if kind == "stronger" else None
            # the row itself: its path is the ledger's, never a path to expand (an inbox
            # folder may be called "~")
            plan = retry.plan(config, ledger, rows=[row], stronger=budget is not None)
            if plan.refused:
                raise retry.RetryError(f"{row.path}: {plan.skipped[0][1]}")
            if plan.skipped:  # queued afresh meanwhile: no refusal, as for the CLI
                return "queued"
            retry.apply(ledger, plan.queue, time.time(), budget, via=VIA, log=web.log)
        elif kind == "ship":
            decisions.ship(config, ledger, row, VIA, log=web.log)
        else:
            decisions.remove(config, ledger, row, VIA, log=web.log)
        return kind

    routes = [
        Route("/", dashboard, name="dashboard"),
        Route("/api/status", api_status),
        Route("/photos", photo_list, name="photos"),
        Route("/photos/{id:int}", photo_page, name="photo"),
        Route("/photos/{id:int}/original.png", original),
        Route("/photos/{id:int}/copy.jpg", copy),
        Route("/photos/{id:int}/thumb.jpg", thumb),
        Route("/photos/{id:int}/diff.png", diff),
        *(
            Route(f"/photos/{{id:int}}/{kind}", act(kind), methods=["POST"])
            for kind in ("retry", "stronger", "ship", "remove")
        ),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={_NotFound: not_found, 404: not_found})
    return Guard(app, token, loopback)


def _forged() -> Response:
    return Response(
        "refused: this form did not come from the page (reload it and try again)\n",
        403,
        media_type="text/plain",
    )


async def _small_body(request: Request) -> bytes | None:
    """The form, or None when it is larger than MAX_FORM: refused by its Content-Length
    before a byte is read, and read no further than the limit when it gives none, so a
    large upload never lands in the daemon's memory."""
    length = request.headers.get("content-length", "")
    size = _ascii_int(length)
    if length and (size is None or size > MAX_FORM):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    return body


def _ascii_int(text: str) -> int | None:
    """A number written in ASCII digits (``str.isdigit`` alone takes "²" and "١")."""
    return int(text) if text.isascii() and text.isdigit() else None


def _same_origin(request: Request) -> bool:
    """A browser's Origin, when it names a site, must be this page's own host (a second
    guard beside the secret; "null" — privacy settings, sandboxes — leaves it to the secret)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host")
