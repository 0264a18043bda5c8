"""Deterministic names of an LLMDeployment's children, and the revision as a label value.

Names never carry random suffixes: a reconcile pass after a restart finds the same objects.
"""

from __future__ import annotations

import hashlib
import re

_LABEL_MAX = 63
_INVALID = re.compile(r"[^A-Za-z0-9._-]+")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def short_hash(*parts: str, length: int = 8) -> str:
    """A stable hex digest of the parts (NUL-separated, so ("ab","c") != ("a","bc"))."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:length]


def deployment_name(name: str, track: str) -> str:
    """The Deployment of one track: <name>-stable, <name>-canary, <name>-staging."""
    return f"{name}-{track}"


def service_name(name: str) -> str:
    """The Service (also the PDB, NetworkPolicy, PodMonitor and PrometheusRule)."""
    return name


def autoscaler_name(name: str) -> str:
    """The HorizontalPodAutoscaler or KEDA ScaledObject of spec.autoscaling."""
    return name


def pvc_name(name: str) -> str:
    """The model-cache PersistentVolumeClaim, shared by all revisions."""
    return f"{name}-model-cache"


def download_job_name(name: str, model_id: str, revision: str) -> str:
    """The download Job of one model revision: a new revision gets a new Job, an old one its old Job."""
    return f"{name}-download-{short_hash(model_id, revision)}"


def revision_label(revision: str) -> str:
    """The revision as a label value: a 40-hex sha as is; a ref sanitised and, if that changed it
    or it was too long, suffixed with a hash of the original so two refs never collide."""
    if len(revision) <= _LABEL_MAX and _LABEL_VALUE.match(revision):
        return revision
    suffix = short_hash(revision)
    stem = _INVALID.sub("-", revision)[: _LABEL_MAX - len(suffix) - 1].strip("-_.")
    return f"{stem}-{suffix}" if stem else suffix


def endpoint(name: str, namespace: str, port: int) -> str:
    """The in-cluster URL of the Service (status.endpoint)."""
    return f"http://{service_name(name)}.{namespace}.svc.cluster.local:{port}"
