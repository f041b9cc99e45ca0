"""The benchmarks' peak memory: a child's own, not its parent's; a process tree's whole."""

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


def test_a_tree_peak_counts_the_memory_of_child_processes() -> None:
    """In a fresh process (its own memory is small): a child holds 200 MiB."""
    code = """
import subprocess, sys, time
from benchmarks.peak_memory import TreePeak
holder = (
    "import sys; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
    "print('held', flush=True); sys.stdin.readline()"
)
with TreePeak(interval=0.01) as tree:
    child = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline() == "held\\n"
    deadline = time.monotonic() + 60  # a bound for a sampler that never sees it
    while tree.peak_mib < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    child.communicate("\\n")
print(tree.peak_mib)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert float(done.stdout) >= 200
