"""How fast this sandbox loads, so an object too big for the time left is deferred up front."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Throughput:
    """Bytes per second this sandbox has measured, per kind of object (plain or compressed).

    Starts from conservative defaults (a fraction of the benchmark's rate) and follows measured
    loads with an exponential moving average, so the up-front size check gets sharper with use.
    """

    plain_bps: float = 15e6
    compressed_bps: float = 4e6
    weight: float = 0.3

    def estimate_ms(self, size: int, compressed: bool) -> float:
        return size / (self.compressed_bps if compressed else self.plain_bps) * 1000

    def observe(self, size: int, seconds: float, compressed: bool) -> None:
        if size < 4 * 1024 * 1024 or seconds <= 0:
            return  # small objects measure latency, not throughput
        rate = size / seconds
        if compressed:
            self.compressed_bps += self.weight * (rate - self.compressed_bps)
        else:
            self.plain_bps += self.weight * (rate - self.plain_bps)
