"""A process's own peak memory, for the benchmarks that run each side in a child.

`getrusage(RUSAGE_SELF).ru_maxrss` survives fork and exec on Linux: a child started by
a parent that once held 2.4 GB reports at least 2.4 GB, whatever it used itself (the
llama.cpp backend measured 2,589 MiB that way, 1,108 MiB on its own). The kernel's
high-water mark of the process's memory map (`VmHWM`) starts afresh at exec.
"""

from __future__ import annotations

import os
import resource
import threading
from pathlib import Path


def peak_rss_mib() -> float:
    """The largest resident set this process has had since it started, in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: the rusage number, which may include the parent's
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


class TreePeak:
    """The largest resident memory of this process and its child processes together,
    sampled every `interval` seconds while the block runs (a command may hand work to
    child processes; their memory is the user's too). Pages the processes share count
    once per process, so this errs high; it is at least this process's own peak."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mib = max(self.peak_mib, peak_rss_mib())

    def _sample(self) -> None:
        page_mib = os.sysconf("SC_PAGE_SIZE") / 2**20
        while not self._stop.wait(self.interval):
            pages = sum(_resident_pages(pid) for pid in _tree(os.getpid()))
            self.peak_mib = max(self.peak_mib, pages * page_mib)


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from /proc (empty where there is none)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if name.isdigit():
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:  # ended meanwhile
                continue
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sorted(tree)


def _resident_pages(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
