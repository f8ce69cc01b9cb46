"""SIGINT / SIGTERM: stop the run from the main process, never from a worker.

Nipype's MultiProc workers run each node inside a catch-all, so a Ctrl-C delivered to the
whole process group became a "node crash" there and the remaining runs were still measured.
Under :func:`interrupt_on_signals` the main process raises :class:`Interrupted` (a
``BaseException``: no ``except Exception`` of a node or of a grader swallows it) and forked
workers ignore the signal, so the node they are running finishes or is dropped cleanly while
the main process stops scheduling, writes what finished and exits with ``128 + signal``.
"""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Iterator, Sequence

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main process on a handled signal; ``exit_code`` is ``128 + signum``
    (130 for SIGINT, 143 for SIGTERM), the shell's convention."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextlib.contextmanager
def interrupt_on_signals(signals: Sequence[int] = HANDLED) -> Iterator[list[int]]:
    """Within the block, a handled signal raises :class:`Interrupted` in this process (every
    time: a second Ctrl-C also stops the clean-up) and is ignored in processes forked from
    it. Yields the list of signals received so far."""
    owner = os.getpid()
    received: list[int] = []

    def handler(signum: int, _frame) -> None:
        if os.getpid() != owner:
            return  # a forked worker: the main process decides
        received.append(signum)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
