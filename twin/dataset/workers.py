"""Worker processes for the work that reads a whole history (a dataset build, the first
memory index), which end when the process that started them does.

Spawned, not forked: the caller may hold threads (aiosqlite's, torch's) that a fork
would copy mid-operation. And a pool's workers do not notice their parent die: a
`twin import` killed while indexing left its workers waiting for work forever. So each
worker watches its parent and leaves once it is gone.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

_WATCH_SECONDS = 1.0  # how often a worker checks that its parent is alive


def worker_pool(
    workers: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_start,
        initargs=(os.getpid(), initializer, initargs),
    )


def _start(parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    threading.Thread(target=_leave_with, args=(parent,), daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _leave_with(parent: int) -> None:
    """An orphan is handed to another parent: then this worker's work is nobody's."""
    while os.getppid() == parent:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)
