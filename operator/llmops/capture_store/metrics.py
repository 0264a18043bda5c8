"""The capture store's Prometheus metrics, in a registry of their own (served on its health port).

The PodMonitor `<name>-capture` adds namespace and llmops_deployment. Labels are bounded: kinds
are two, refusal reasons and deletion reasons a handful each.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["StoreMetrics"]


class StoreMetrics:
    """Counters, gauges and histograms of one store."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.records = Counter(
            "llmops_capture_store_records_written",
            "Records written and fsynced (acknowledged), by kind (request, feedback).",
            ["kind"],
            registry=r,
        )
        self.bytes = Counter(
            "llmops_capture_store_written_bytes", "Compressed bytes appended to segments.", registry=r
        )
        self.refused = Counter(
            "llmops_capture_store_refused_batches",
            "Batches refused, by reason: unauthorized, malformed, too_large, size_cap, disk_full, error.",
            ["reason"],
            registry=r,
        )
        self.deleted = Counter(
            "llmops_capture_store_deleted_segments",
            "Segments deleted, by reason (retention, size_cap).",
            ["reason"],
            registry=r,
        )
        self.discarded = Counter(
            "llmops_capture_store_discarded_bytes",
            "Bytes of torn segment tails cut off after a crash (never acknowledged).",
            registry=r,
        )
        self.segments = Gauge("llmops_capture_store_segments", "Segment files on the volume.", registry=r)
        self.stored = Gauge("llmops_capture_store_stored_bytes", "Bytes of all segments.", registry=r)
        self.max_bytes = Gauge("llmops_capture_store_max_bytes", "The size cap (maxSize).", registry=r)
        self.fsync = Histogram(
            "llmops_capture_store_fsync_seconds",
            "Time to fsync one group of batches (every file it touched).",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.group = Histogram(
            "llmops_capture_store_group_batches",
            "Batches made durable by one fsync round (fsync batching across concurrent requests).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.reads = Counter(
            "llmops_capture_store_read_records", "Records streamed to readers (GET /v1/records).", registry=r
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
