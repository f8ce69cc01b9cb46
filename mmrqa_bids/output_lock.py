"""The output folder's grading lock: one dataset grading at a time per output folder.

The group level and a whole-dataset participant run's join step both read every run JSON,
grade each run against its cohort and rewrite the run JSONs, cohort references (and group
tables, reports). Each file is replaced atomically, the set is not: two gradings into one
folder at once could leave run JSONs of one and references of the other. :func:`grading_lock`
holds an exclusive ``flock`` (:func:`mmrqa_bids.io.folder_lock`) on ``OUT/``
:data:`GRADING_LOCK` for the whole read -> grade -> write; a second process waits for it,
with one console line, then grades the newest outputs (the grading is idempotent).

The lock file is hidden (BIDS tools and validators skip dot files) and sits at the top of
the folder, where nothing that reads the outputs (``OUT/sub-*/**``, ``cohorts/``, ``logs/``)
looks. On a filesystem without ``flock`` (an NFS mount without a lock daemon, some FUSE and
SMB mounts) the grading goes on without the lock, with one warning line.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path
from typing import Iterator

from mmrqa_bids.io import folder_lock

#: The lock file, in the output folder.
GRADING_LOCK = ".mmrqa-grading.lock"
#: ``flock`` errors that mean "this filesystem has no locks", not "something is wrong".
UNSUPPORTED = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS})
logger = logging.getLogger(__name__)


@contextlib.contextmanager
def grading_lock(output_dir: str | os.PathLike) -> Iterator[Path | None]:
    """Hold the grading lock of ``output_dir`` for the ``with`` block; yields the lock file,
    or None when the folder does not exist (nothing to grade: the caller says so) or its
    filesystem has no locks (one warning line). Another process holding it: one line, then
    wait. A signal while waiting raises as anywhere else (the lock is not taken)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        yield None
        return
    with contextlib.ExitStack() as stack:
        try:  # only taking the lock is guarded: an OSError of the block is the caller's
            lock = stack.enter_context(folder_lock(folder, GRADING_LOCK, on_wait=_waiting))
        except OSError as exc:
            if exc.errno not in UNSUPPORTED:
                raise
            logger.warning(f"WARNING {folder / GRADING_LOCK}: this filesystem does not support "
                           f"file locks ({exc.strerror or exc}); grading without the lock, so "
                           f"another participant or group run grading {folder} at the same "
                           "time could interleave its writes with this one's")
            lock = None
        yield lock


def _waiting(lock: Path) -> None:
    logger.info(f"another mmrqa run is grading {lock.parent} (it holds {lock}); waiting for it "
                "to finish, then grading the newest outputs")
