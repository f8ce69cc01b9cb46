"""SIGINT / SIGTERM: stop the run from the main process, between workflow steps.

Nipype runs every node inside a catch-all (its runtime context, and MultiProc's worker
wrapper), so an exception raised by a signal inside a node becomes a "node crash" and the
remaining runs are still measured. Under :func:`interrupt_on_signals`:

- outside the workflow, a handled signal raises :class:`Interrupted` at once (a
  ``BaseException``: no ``except Exception`` swallows it);
- while the workflow runs (:meth:`InterruptState.deferred`), the first signal is only
  recorded; the running node finishes and :meth:`InterruptState.status_callback`, which
  Nipype calls in the main process whenever a node starts or ends, raises
  :class:`Interrupted` there: nothing new is scheduled. A second signal raises at once;
- forked workers ignore the signal (the main process decides).

The exit code is ``128 + signal`` (130 for SIGINT, 143 for SIGTERM), the shell's convention.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """Raised in the main process on a handled signal."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@dataclass
class InterruptState:
    """Signals received, and whether the first one is deferred to the next node boundary."""

    owner: int = field(default_factory=os.getpid)
    received: list[int] = field(default_factory=list)
    defer: bool = False

    def handle(self, signum: int, _frame: Any = None) -> None:
        if os.getpid() != self.owner:
            return  # a forked worker: the main process decides
        first = not self.received
        self.received.append(signum)
        if first and self.defer:
            print(f"[mmrqa] {signal.Signals(signum).name} received: finishing the running "
                  "step, then stopping (send it again to stop at once)", file=sys.stderr,
                  flush=True)
            return
        raise Interrupted(signum)

    def check(self) -> None:
        """Raise :class:`Interrupted` if a signal was received."""
        if self.received:
            raise Interrupted(self.received[0])

    def status_callback(self, chained: Callable[[Any, str], None] | None = None
                        ) -> Callable[[Any, str], None]:
        """A Nipype ``status_callback`` (plugin argument) raising at the node boundary."""
        def callback(node: Any, status: str) -> None:
            if chained is not None:
                chained(node, status)
            self.check()
        return callback

    @contextlib.contextmanager
    def deferred(self) -> Iterator["InterruptState"]:
        """Within the block, the first signal waits for the next node boundary."""
        self.defer = True
        try:
            yield self
        finally:
            self.defer = False


@contextlib.contextmanager
def interrupt_on_signals(signals: Sequence[int] = HANDLED) -> Iterator[InterruptState]:
    """Install the handlers of :class:`InterruptState` for the block; restore them after."""
    state = InterruptState()
    previous = {sig: signal.signal(sig, state.handle) for sig in signals}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
