"""Token buckets per principal or source address (in process; each gateway worker enforces its own share)."""

from __future__ import annotations

import threading
import time

from mlwarden.errors import RateLimited


class TokenBuckets:
    """``rate`` requests per second with bursts of ``burst``, per principal."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = time.monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, principal: str, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens or raise :class:`RateLimited` with the seconds to wait."""
        if self.rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(principal, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[principal] = (tokens, now)
                wait = (cost - tokens) / self.rate
                raise RateLimited(f"rate limit of {self.rate:g} requests/s exceeded", retry_after=wait)
            self._buckets[principal] = (tokens - cost, now)
            self._forget_if_full()

    def wait(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` could spend ``cost`` (0 when it can now); spends nothing."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    def spend(self, key: str, cost: float = 1.0) -> None:
        """Spend ``cost`` from ``key``'s bucket without refusing (it empties, never goes below zero)."""
        if self.rate <= 0:
            return
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            self._buckets[key] = (max(0.0, tokens - cost), now)
            self._forget_if_full()

    def _forget_if_full(self) -> None:
        if len(self._buckets) > 100_000:  # forget idle keys rather than grow without bound
            self._buckets.clear()
