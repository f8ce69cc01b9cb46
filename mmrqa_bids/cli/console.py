"""The console: mmrqa's progress, warnings and errors through :mod:`logging`.

Every module logs to ``logging.getLogger(__name__)`` (all under ``mmrqa_bids``) and never
prints progress itself. A console script calls :func:`configure` once: each record becomes
the line ``[<prog>] <message>`` (the messages carry their own ``WARNING``/``FAILED`` words, so
the text reads as it always has), on stdout below ``stderr_level`` and on stderr from it.
``-v``/``-q`` move the threshold: INFO by default (the progress lines), DEBUG with ``-v``,
WARNING with ``-q``, ERROR with ``-qq``.

The handler writes to whatever ``sys.stdout``/``sys.stderr`` are when a record is emitted, so
output captured or redirected after configuration (pytest, a wrapping script) still sees it.
"""
from __future__ import annotations

import logging
import sys

PACKAGE = "mmrqa_bids"
_LEVELS = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)


def level_for(verbosity: int) -> int:
    """``-q``/``-v`` count (``verbose - quiet``) -> logging level: 0 INFO, 1 DEBUG, -1 WARNING,
    -2 and below ERROR."""
    return _LEVELS[max(0, min(len(_LEVELS) - 1, 2 + verbosity))]


class _ConsoleHandler(logging.Handler):
    """Records below ``stderr_level`` to the current stdout, the others to the current stderr."""

    def __init__(self, stderr_level: int) -> None:
        super().__init__()
        self.stderr_level = stderr_level

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= self.stderr_level else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging must never stop the run
            self.handleError(record)


def configure(prog: str, verbosity: int = 0, stderr_level: int = logging.ERROR) -> logging.Logger:
    """Send the package's records to the console as ``[prog] message`` lines (replacing an
    earlier configuration); returns the package logger."""
    logger = logging.getLogger(PACKAGE)
    for handler in [h for h in logger.handlers if isinstance(h, _ConsoleHandler)]:
        logger.removeHandler(handler)
    handler = _ConsoleHandler(stderr_level)
    handler.setFormatter(logging.Formatter(f"[{prog}] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level_for(verbosity))
    logger.propagate = False  # one line per record, whatever the root logger does
    return logger
