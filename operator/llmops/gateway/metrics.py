"""The gateway's own Prometheus metrics, in a registry of their own.

The registry holds only the gateway's series (no process or platform collectors), because the
health port serves them together with the engine's exposition in one scrape: names must not
collide with the engine's. The PodMonitor adds namespace, llmops_deployment, llmops_track and
llmops_revision (the pod's); `revision` and `track` on llmops_feedback_total are those of the
answer being rated, read from its signed request ID, and so are those of the capture counters
for feedback records. Labels are bounded: routes are a fixed
list, clients are the Secret's keys, ratings are seven values.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["KNOWN_ROUTES", "GatewayMetrics", "route_label"]

KNOWN_ROUTES: frozenset[str] = frozenset(
    {
        "/",
        "/generate",
        "/generate_stream",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/models",
        "/v1/feedback",
        "/info",
        "/tokenize",
        "/health",
        "/metrics",
    }
)


def route_label(path: str) -> str:
    """The path if it is a known route, else "other" (unbounded paths would be unbounded series)."""
    return path if path in KNOWN_ROUTES else "other"


class GatewayMetrics:
    """Counters and histograms of one gateway."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "llmops_gateway_requests",
            "Requests answered by the gateway, by route, status code and client.",
            ["route", "code", "client"],
            registry=r,
        )
        self.duration = Histogram(
            "llmops_gateway_request_duration_seconds",
            "Time from the request's arrival to the end of the answer (the whole stream).",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=r,
        )
        self.auth_failures = Counter(
            "llmops_gateway_auth_failures",
            "Requests refused with 401, by reason (missing or invalid key).",
            ["reason"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "llmops_gateway_upstream_errors",
            "Requests the engine did not answer: timeout (504), unreachable (502), client gone.",
            ["kind"],
            registry=r,
        )
        self.feedback = Counter(
            "llmops_feedback",
            "User feedback on answers, by the revision and track that produced the answer.",
            ["revision", "track", "rating"],
            registry=r,
        )
        self.feedback_refused = Counter(
            "llmops_feedback_refused",
            "Feedback refused, by reason (invalid body, invalid or foreign request ID).",
            ["reason"],
            registry=r,
        )
        self.clients = Gauge("llmops_gateway_api_clients", "Clients with an API key.", registry=r)
        self.capture_records = Counter(
            "llmops_capture_records",
            "Capture records delivered (to the store or the sink), by revision, track and kind.",
            ["revision", "track", "kind"],
            registry=r,
        )
        self.capture_dropped = Counter(
            "llmops_capture_dropped",
            "Capture records dropped, by reason: queue_full, store_unavailable (gave up retrying), "
            "rejected (refused by the store or the sink).",
            ["revision", "track", "reason"],
            registry=r,
        )
        self.capture_queue = Gauge(
            "llmops_capture_queue_records", "Capture records waiting in the gateway's queue.", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
