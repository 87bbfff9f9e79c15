"""What the benchmarks measure with (percentiles of latencies, a process's resident memory) and the open-file limit
they lift for thousands of sockets. A sibling module: a benchmark runs as a script, so its own folder is on sys.path.
(What tests and benchmarks both need, such as free ports and waiting for /healthz, is in `tocsin.testing`.)"""

from __future__ import annotations

import resource
from pathlib import Path


def percentile(values: list[float], p: float) -> float:
    """The `p`th percentile (0..100) of `values`: the sorted value at the rounded position p/100 * (n - 1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def raise_fd_limit() -> None:
    """Lift this process's soft limit of open files to the hard one (also as `preexec_fn` for a child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` in KiB (VmRSS from /proc), 0 when not found."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
