"""A process's own peak memory, for the benchmarks that run each side in a child.

`getrusage(RUSAGE_SELF).ru_maxrss` survives fork and exec on Linux: a child started by
a parent that once held 2.4 GB reports at least 2.4 GB, whatever it used itself (the
llama.cpp backend measured 2,589 MiB that way, 1,108 MiB on its own). The kernel's
high-water mark of the process's memory map (`VmHWM`) starts afresh at exec.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> float:
    """The largest resident set this process has had since it started, in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux: the rusage number, which may include the parent's
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024
