"""The benchmarks' peak memory is the child's own, not its parent's."""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from tests.conftest import ROOT


def test_a_child_reports_its_own_peak_not_its_parents() -> None:
    ballast = bytearray(300 * 2**20)  # this process has held at least 300 MiB more
    ballast[::4096] = b"x" * len(ballast[::4096])  # touched: resident
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    code = (
        "import json, resource; from benchmarks.peak_memory import peak_rss_mib; "
        "rusage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
        "print(json.dumps([peak_rss_mib(), rusage]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    own, inherited = json.loads(done.stdout)
    del ballast
    assert inherited >= 300  # rusage carries the parent's peak across fork and exec
    assert 0 < own < 100 < parent
