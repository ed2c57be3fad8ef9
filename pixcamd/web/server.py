"""uvicorn in a thread of its own, with its own event loop: ``pixcamd run`` serves the page
beside the worker, ``pixcamd web`` alone.

The socket is bound here, before the thread starts, so a port already in use is a clear error
at once (``WebError``): ``pixcamd web`` exits with it; the daemon logs it as a warning and
goes on protecting without a page (docs/web.md). uvicorn installs no signal handlers outside
the main thread; ``stop`` asks it to finish (open connections get a few seconds) and joins the
thread. A slow or stuck browser holds a connection of the event loop, never the worker.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

from pixcamd.daemon.config import Config
from pixcamd.daemon.config_checks import is_loopback, parse_web, web_problems
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.ledger_file import ledger_there
from pixcamd.errors import PixcamdError

STOP_WAIT = 5.0


class WebError(PixcamdError):
    """The page cannot be served as configured (address, port, token)."""


class WebServer:
    """``start()`` → the URL; ``stop()``. ``address`` overrides the config's ``web``."""

    def __init__(self, config: Config, address: str | None = None, log=None):
        self.config, self.log = config, log  # log: the daemon's, where it serves beside it
        self.address = config.web if address is None else address
        problems = web_problems({"web": self.address, "web_token": config.web_token})
        if not self.address:
            problems.append('web: "" turns the web page off; give an address, e.g. 127.0.0.1:8765')
        if problems:
            raise WebError("; ".join(problems))
        self.host, self.port = parse_web(self.address)
        self.server = None
        self.thread: threading.Thread | None = None
        self.ledger: Ledger | None = None
        self.page = None  # pixcamd.web.app.Web once started: the config its decisions read
        self.url = ""

    def reconfigure(self, config: Config) -> None:
        """A reload's config, for the page's decisions from the next one (its address, token
        and folders are a restart's: a reload that changes them is refused)."""
        self.config = config
        if self.page is not None:
            self.page.config = config  # one reference, read once per decision

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = None
        try:  # a sandbox without IP (the system unit: PrivateNetwork=) refuses the socket itself
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as exc:
            if sock is not None:
                sock.close()
            why = exc.strerror or str(exc)
            if exc.errno == errno.EADDRINUSE:
                # beside the daemon (its log), the config's web is the remedy; `pixcamd web`
                # alone listens where --listen says (the config's web may be "": no daemon page)
                remedy = (
                    'set web to another port in the config, or web = "" for no page'
                    if self.log is not None
                    else "give this command another address, e.g. --listen 127.0.0.1:8766"
                )
                why = f"the port is in use (another program, or another pixcamd); {remedy}"
            raise WebError(f"web: cannot listen on {self.address}: {why}") from None
        return sock

    def start(self, timeout: float = 10.0) -> str:
        import uvicorn

        from pixcamd.web.app import Web, create_app

        try:
            ledger_there(self.config.ledger_path)
        except PixcamdError as exc:
            raise WebError(str(exc)) from None
        sock = self._bind()
        try:
            self.ledger = Ledger(self.config.ledger_path)
            self.page = Web(self.config, self.ledger, self.log)
            app = create_app(
                self.config,
                self.ledger,
                self.config.web_token,
                is_loopback(self.host),
                self.log,
                page=self.page,
            )
        except BaseException:
            sock.close()
            self._close_ledger()
            raise
        settings = uvicorn.Config(
            app,
            log_config=None,  # the daemon's logging stays as it is
            log_level="warning",
            access_log=False,
            lifespan="off",
            limit_concurrency=64,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=STOP_WAIT,
            server_header=False,
        )
        self.server = uvicorn.Server(settings)
        port = sock.getsockname()[1]
        self.thread = threading.Thread(
            target=self._serve, args=(sock,), name="pixcamd-web", daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self.server.started:
            self.stop()
            raise WebError(f"web: the server did not start on {self.address}")
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{port}/"
        return self.url

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.server.run(sockets=[sock])
        finally:
            sock.close()

    def stop(self) -> None:
        """Finish serving and join the thread (idempotent)."""
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(STOP_WAIT + 2)
            if self.thread.is_alive():
                self.server.force_exit = True
                self.thread.join(STOP_WAIT)
        self._close_ledger()

    def _close_ledger(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None


def serve_beside_daemon(config: Config, log) -> WebServer | None:
    """The daemon's page in its own thread (``web = ""``: none). A port in use is said loudly
    on ``log`` and the daemon protects without a page: the photos matter more."""
    if not config.web:
        return None
    try:
        server = WebServer(config, log=log)
        url = server.start()
    except (PixcamdError, OSError) as exc:
        log.emit("web", message=f"no web page: {exc}; protecting goes on", level="warning")
        return None
    log.emit("web", message=f"the web page: {url}", url=url)
    return server
