"""The local web page: what the daemon does, each photo before and after, and a person's
decisions (retry, retry stronger, ship anyway, remove a copy).

Starlette (ASGI) served by uvicorn: ``pixcamd run`` runs it in a thread of its own with its own
event loop (``server.WebServer``), ``pixcamd web`` alone against the ledger of a daemon that
runs elsewhere on this machine. It only reads the ledger and the daemon's folders and calls the
same operations as the CLI (``pixcamd.daemon.retry``, ``pixcamd.daemon.decisions``): nothing
in ``pixcamd.daemon`` imports this package, except ``service`` to start the server.

Modules: ``security`` (token, CSRF secret, Host and path checks, headers), ``files`` (which
files may be served, thumbnails, the difference image, the bounded cache), ``pages`` (what a
page shows, from ledger rows), ``app`` (routes), ``server`` (uvicorn in a thread). See
docs/web.md.
"""
