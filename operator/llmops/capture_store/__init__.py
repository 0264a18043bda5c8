"""The capture store: where the gateways' captured records are kept (`llmops capture-store`).

One pod per LLMDeployment with capture on, with its own PVC. The gateways POST batches of JSONL
records (records); they are appended as gzip members to per-day, per-revision segments and
fsynced before the answer (segments), with fsyncs shared across concurrent batches (server).
Readers (the retrain Job) GET the request records with their feedback joined. Metrics on the
health port (metrics).
"""

from llmops.capture_store.records import Query, Record, RecordError, parse_batch, parse_query
from llmops.capture_store.segments import SegmentKey, Segments, StoreFull, read_records
from llmops.capture_store.server import CaptureStore, StoreConfig

__all__ = [
    "CaptureStore",
    "Query",
    "Record",
    "RecordError",
    "SegmentKey",
    "Segments",
    "StoreConfig",
    "StoreFull",
    "parse_batch",
    "parse_query",
    "read_records",
]
