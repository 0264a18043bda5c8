"""TGI's Prometheus metrics, reproduced for the TGI simulator.

Names, types and bucket edges follow text-generation-inference's router (server.rs, infer/,
validation.rs at v3.3.x): no `_total`/`_seconds` suffixes, histograms with TGI's own buckets,
counter and histogram series that appear only after their first event. The exposition mimics
metrics-exporter-prometheus (the Rust exporter TGI uses): `# HELP`/`# TYPE` lines, counters, then
gauges, then histograms, each family followed by a blank line.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

__all__ = [
    "DURATION_BUCKETS",
    "Histogram",
    "TgiMetrics",
    "format_float",
    "linear_token_buckets",
]


def _duration_buckets() -> tuple[float, ...]:
    # TGI multiplies iteratively (value *= 1.5), so the edges carry the same float rounding
    # as `0.0001 * 1.5 ** k` would not: reproduce the loop, not the formula.
    value = 0.0001
    edges = []
    for _ in range(35):
        value *= 1.5
        edges.append(value)
    return tuple(edges)


DURATION_BUCKETS: tuple[float, ...] = _duration_buckets()
"""Buckets of every `*duration` histogram: 0.0001·1.5^k for k = 1..35 (then +Inf)."""


def linear_token_buckets(limit: int) -> tuple[float, ...]:
    """TGI's 100 linear token-count buckets: (limit / 100) · (x + 1) for x = 0..99."""
    step = limit / 100.0
    return tuple(step * (x + 1) for x in range(100))


def format_float(value: float) -> str:
    """Render a number like Rust's f64 Display: integral values without a trailing `.0`."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class Histogram:
    """A cumulative Prometheus histogram with fixed upper bounds (an implicit +Inf last)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # `le` semantics: a value equal to a bound belongs to that bound's bucket.
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append(f'{name}_bucket{{le="{format_float(bound)}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        out.append(f"{name}_sum {format_float(self.sum)}")
        out.append(f"{name}_count {self.count}")
        return out


# TGI describes these with metrics::describe_* (server.rs); the exporter prints them as HELP.
_HELP = {
    "tgi_request_success": "Number of successful requests",
    "tgi_request_count": "Total number of requests",
    "tgi_request_duration": "Total time spent processing the request",
    "tgi_request_validation_duration": "Time spent validating the request",
    "tgi_request_queue_duration": "Time spent in the queue per request",
    "tgi_request_inference_duration": "Request inference duration",
    "tgi_request_mean_time_per_token_duration": "Mean time per token per request",
    "tgi_request_generated_tokens": "Generated tokens per request",
    "tgi_request_max_new_tokens": "Maximum new tokens per request",
    "tgi_request_input_length": "Input token length per request",
    "tgi_batch_current_size": "Current batch size",
    "tgi_queue_size": "Current queue size",
}

DURATION_HISTOGRAMS = (
    "tgi_request_duration",
    "tgi_request_validation_duration",
    "tgi_request_queue_duration",
    "tgi_request_inference_duration",
    "tgi_request_mean_time_per_token_duration",
)


class TgiMetrics:
    """The request-level metrics a TGI router exports, with TGI's names and buckets."""

    def __init__(self, max_input_tokens: int, max_total_tokens: int) -> None:
        self._bounds: dict[str, tuple[float, ...]] = dict.fromkeys(DURATION_HISTOGRAMS, DURATION_BUCKETS)
        self._bounds["tgi_request_input_length"] = linear_token_buckets(max_input_tokens)
        self._bounds["tgi_request_generated_tokens"] = linear_token_buckets(max_total_tokens)
        self._bounds["tgi_request_max_new_tokens"] = linear_token_buckets(max_total_tokens)
        # Counters keyed by (name, label pairs); absent until first incremented, like TGI's.
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        self._histograms: dict[str, Histogram] = {}
        # TGI's scheduler sets these from its first loop on; export them from the start.
        self.gauges: dict[str, float] = {"tgi_queue_size": 0, "tgi_batch_current_size": 0}

    def inc(self, name: str, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self._counters[key] = self._counters.get(key, 0) + 1

    def counter(self, name: str, **labels: str) -> int:
        return self._counters.get((name, tuple(sorted(labels.items()))), 0)

    def observe(self, name: str, value: float) -> None:
        histogram = self._histograms.get(name)
        if histogram is None:
            histogram = self._histograms[name] = Histogram(self._bounds[name])
        histogram.observe(value)

    def add_gauge(self, name: str, delta: float) -> None:
        self.gauges[name] += delta

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines: list[str] = []

        def family(name: str, kind: str, samples: list[str]) -> None:
            if name in _HELP:
                lines.append(f"# HELP {name} {_HELP[name]}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)
            lines.append("")

        by_name: dict[str, list[str]] = {}
        for (name, labels), value in self._counters.items():
            label_text = ",".join(f'{k}="{v}"' for k, v in labels)
            sample = f"{name}{{{label_text}}} {value}" if labels else f"{name} {value}"
            by_name.setdefault(name, []).append(sample)
        for name in sorted(by_name):
            family(name, "counter", sorted(by_name[name]))
        for name in sorted(self.gauges):
            family(name, "gauge", [f"{name} {format_float(self.gauges[name])}"])
        for name in sorted(self._histograms):
            family(name, "histogram", self._histograms[name].lines(name))
        return "\n".join(lines) + ("\n" if lines else "")
