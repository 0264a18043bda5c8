"""vLLM's Prometheus metrics, reproduced for the simulator's vLLM mode.

Names, types, labels and bucket edges follow vLLM's PrometheusStatLogger
(vllm/v1/metrics/loggers.py; see llmops.engines.vllm for the commits): the `vllm:` prefix,
`model_name` and `engine` labels on every series, counters exposed with `_total`,
`vllm:request_success_total` by `finished_reason`, histograms with vLLM's own buckets (1-2-5
token buckets up to max-model-len). The exposition follows prometheus_client's text format
(values printed as floats, `le` after the metric's own labels). The HTTP counter
`http_requests_total{handler, method, status}` comes from prometheus_fastapi_instrumentator, which
vLLM's API server mounts: status is grouped into 2xx/4xx/5xx.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = [
    "E2E_BUCKETS",
    "ITL_BUCKETS",
    "TTFT_BUCKETS",
    "VllmMetrics",
    "build_1_2_5_buckets",
]

TTFT_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
ITL_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
)  # fmt: skip
E2E_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
FINISH_REASONS = ("stop", "length", "abort")


def build_1_2_5_buckets(max_value: int) -> tuple[float, ...]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    out: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(out)
            out.append(float(value))
        exponent += 1


def _num(value: float) -> str:
    # prometheus_client prints every value as a Python float ("1.0", "0.3", "+Inf").
    return repr(float(value))


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, times: int = 1) -> None:
        self.counts[bisect_left(self.bounds, value)] += times
        self.sum += value * times
        self.count += times

    def lines(self, name: str, labels: str) -> list[str]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            running += n
            out.append(f'{name}_bucket{{{labels},le="{_num(bound)}"}} {_num(running)}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {_num(self.count)}')
        out.append(f"{name}_count{{{labels}}} {_num(self.count)}")
        out.append(f"{name}_sum{{{labels}}} {_num(self.sum)}")
        return out


_HELP = {
    "vllm:num_requests_running": ("gauge", "Number of requests in model execution batches."),
    "vllm:num_requests_waiting": ("gauge", "Number of requests waiting to be processed."),
    "vllm:prompt_tokens": ("counter", "Number of prefill tokens processed."),
    "vllm:generation_tokens": ("counter", "Number of generation tokens processed."),
    "vllm:request_success": ("counter", "Count of successfully processed requests."),
    "vllm:request_prompt_tokens": ("histogram", "Number of prefill tokens processed."),
    "vllm:request_generation_tokens": ("histogram", "Number of generation tokens processed."),
    "vllm:request_params_max_tokens": ("histogram", "Histogram of the max_tokens request parameter."),
    "vllm:time_to_first_token_seconds": ("histogram", "Histogram of time to first token in seconds."),
    "vllm:inter_token_latency_seconds": ("histogram", "Histogram of inter-token latency in seconds."),
    "vllm:e2e_request_latency_seconds": ("histogram", "Histogram of e2e request latency in seconds."),
    "vllm:request_queue_time_seconds": ("histogram", "Histogram of time spent in WAITING phase for request."),
}


class VllmMetrics:
    """The request-level metrics one vLLM server (one engine, index 0) exports."""

    def __init__(self, model_name: str, max_model_len: int) -> None:
        self.labels = f'model_name="{model_name}",engine="0"'
        tokens = build_1_2_5_buckets(max_model_len)
        self._histograms = {
            "vllm:request_prompt_tokens": _Histogram(tokens),
            "vllm:request_generation_tokens": _Histogram(tokens),
            "vllm:request_params_max_tokens": _Histogram(tokens),
            "vllm:time_to_first_token_seconds": _Histogram(TTFT_BUCKETS),
            "vllm:inter_token_latency_seconds": _Histogram(ITL_BUCKETS),
            "vllm:e2e_request_latency_seconds": _Histogram(E2E_BUCKETS),
            "vllm:request_queue_time_seconds": _Histogram(E2E_BUCKETS),
        }
        self.gauges = {"vllm:num_requests_running": 0.0, "vllm:num_requests_waiting": 0.0}
        self.tokens = {"vllm:prompt_tokens": 0, "vllm:generation_tokens": 0}
        # vLLM creates one success series per finish reason up front, so they read 0 from the start.
        self.success = dict.fromkeys(FINISH_REASONS, 0)
        # The HTTP counter's series appear with their first request, as prometheus_client's do.
        self.http: dict[tuple[str, str, str], int] = {}

    def add_gauge(self, name: str, delta: float) -> None:
        self.gauges[name] += delta

    def http_request(self, handler: str, method: str, status: int) -> None:
        key = (handler, method, f"{status // 100}xx")
        self.http[key] = self.http.get(key, 0) + 1

    def finished(
        self,
        *,
        reason: str,
        prompt_tokens: int,
        generation_tokens: int,
        max_tokens: int | None,
        queued: float,
        ttft: float,
        inter_token: float,
        e2e: float,
    ) -> None:
        """Record one finished request the way vLLM's frontend does for a FinishedRequestStats."""
        h = self._histograms
        self.success[reason] += 1
        self.tokens["vllm:prompt_tokens"] += prompt_tokens
        self.tokens["vllm:generation_tokens"] += generation_tokens
        h["vllm:request_prompt_tokens"].observe(prompt_tokens)
        h["vllm:request_generation_tokens"].observe(generation_tokens)
        if max_tokens:
            h["vllm:request_params_max_tokens"].observe(max_tokens)
        h["vllm:time_to_first_token_seconds"].observe(ttft)
        if generation_tokens > 1:
            h["vllm:inter_token_latency_seconds"].observe(inter_token, generation_tokens - 1)
        h["vllm:e2e_request_latency_seconds"].observe(e2e)
        h["vllm:request_queue_time_seconds"].observe(queued)

    def counter(self, name: str, **labels: str) -> float:
        """A counter's current value (tests): vllm:request_success_total{finished_reason}, http_requests_total."""
        if name == "vllm:request_success_total":
            return self.success[labels["finished_reason"]]
        if name == "http_requests_total":
            return self.http.get((labels["handler"], labels["method"], labels["status"]), 0)
        return self.tokens[name.removesuffix("_total")]

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        lines: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: list[str]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(samples)

        if self.http:
            family(
                "http_requests_total",
                "counter",
                "Total number of requests by method, status and handler.",
                [
                    f'http_requests_total{{handler="{h}",method="{m}",status="{s}"}} {_num(v)}'
                    for (h, m, s), v in sorted(self.http.items())
                ],
            )
        for name, value in self.gauges.items():
            family(name, "gauge", _HELP[name][1], [f"{name}{{{self.labels}}} {_num(value)}"])
        for name, value in self.tokens.items():
            family(
                f"{name}_total", "counter", _HELP[name][1], [f"{name}_total{{{self.labels}}} {_num(value)}"]
            )
        family(
            "vllm:request_success_total",
            "counter",
            _HELP["vllm:request_success"][1],
            [
                f'vllm:request_success_total{{{self.labels},finished_reason="{r}"}} {_num(n)}'
                for r, n in self.success.items()
            ],
        )
        for name, histogram in self._histograms.items():
            family(name, "histogram", _HELP[name][1], histogram.lines(name, self.labels))
        return "\n".join(lines) + "\n"
