"""Processes as the tests watch them (Linux: /proc)."""

from __future__ import annotations

import time
from pathlib import Path

WAIT = 60  # seconds: a bound for what never happens when broken, not a speed


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's reaper may be slow, or absent in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def all_end(pids: list[int]) -> bool:
    """Whether every one of `pids` ends within WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while any(map(running, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(map(running, pids))
