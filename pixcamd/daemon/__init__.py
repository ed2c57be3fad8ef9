"""The watch-folder daemon (``pixcamd run``): inbox → protected copies in the outbox.

Modules: ``config`` (the one schema), ``ledger`` (SQLite memory and queue), ``watcher`` (ignore
rules, stability tracker, watchdog handler, scans), ``worker`` (the thread that owns the models
and calls ``pixcamd.protect.protect``), ``service`` (start-up, shutdown, sd_notify), ``timers``
(scans, settle polls and retry wake-ups on APScheduler), ``events``
(the status log) and ``status`` (``pixcamd status``). See docs/daemon.md.
"""

from pixcamd.daemon.config import Config, ConfigError, load_config, validate

__all__ = ["Config", "ConfigError", "load_config", "validate"]
