"""The adapter to a running download Job's progress endpoint (``llmops download --progress-port``).

The reconciler asks it when ``lifecycle.progress.progress_request`` says a reading is due. One
GET with a short timeout; every outcome is a value, never an exception: a DownloadProgress, or a
short reason for status (no pod IP in it: status messages carry no names that change with
every pod). The pod is reached at its IP, as Prometheus reaches a scrape target; ``requests``
honours HTTP(S)_PROXY and NO_PROXY, which is how the local cluster's Service proxy reaches the
simulated pods.
"""

from __future__ import annotations

import ipaddress

import requests

from llmops.contracts import DOWNLOAD_PROGRESS_PATH, DownloadProgress
from llmops.lifecycle.progress import ProgressTarget

__all__ = ["TIMEOUT_SECONDS", "progress_url", "read_progress"]

TIMEOUT_SECONDS = 2.0
"""The endpoint answers from memory: a slow answer means the pod is in trouble, not busy."""


def progress_url(target: ProgressTarget) -> str:
    host = target.host
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass  # a name, not an address
    return f"http://{host}:{target.port}{DOWNLOAD_PROGRESS_PATH}"


def read_progress(target: ProgressTarget, timeout: float = TIMEOUT_SECONDS) -> DownloadProgress | str:
    """How far the download is, or why that could not be read."""
    try:
        resp = requests.get(progress_url(target), timeout=timeout)
    except requests.Timeout:
        return f"no answer within {timeout:g}s"
    except requests.RequestException:
        return "the download pod did not accept the connection"
    if resp.status_code != 200:
        return f"the download pod answered HTTP {resp.status_code}"
    try:
        return DownloadProgress.from_json(resp.json())
    except ValueError as exc:  # JSONDecodeError is a ValueError too
        return f"the download pod's answer is not understood: {str(exc)[:120]}"
