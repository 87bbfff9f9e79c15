"""Token buckets for rate limits per device and per IP address (per worker; documented in docs/protocol.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def take(self, n: float = 1.0) -> bool:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens = self.burst
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class Limiter:
    """Buckets by key, forgotten after `idle_seconds` without use so memory stays bounded."""

    def __init__(self, per_minute: float, burst: float, idle_seconds: float = 600, max_keys: int = 200_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = burst
        self.idle = idle_seconds
        self.max_keys = max_keys
        self.buckets: dict[str, Bucket] = {}
        self.last_sweep = time.monotonic()

    def allow(self, key: str) -> bool:
        bucket = self.buckets.get(key)
        if bucket is None:
            self._sweep()
            bucket = self.buckets[key] = Bucket(self.rate, self.burst)
        return bucket.take()

    def _sweep(self) -> None:
        now = time.monotonic()
        if now - self.last_sweep < 60 and len(self.buckets) < self.max_keys:
            return
        self.last_sweep = now
        self.buckets = {k: b for k, b in self.buckets.items() if now - b.stamp < self.idle}
