"""Running ``helm template`` on the chart (the binary comes from the local cluster's build)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["KUBE_VERSION", "HelmError", "helm_binary", "template"]

# The Kubernetes version `helm template` assumes: the oldest the chart supports (Chart.yaml
# kubeVersion), so the static manifests claim nothing newer. No template branches on it.
KUBE_VERSION = "1.29.0"


class HelmError(RuntimeError):
    """helm failed; the message carries its stderr."""


def helm_binary() -> Path:
    """helm from the cached control-plane build (``make cluster-build``)."""
    from llmops_dev.cluster.build import binaries

    return binaries() / "helm"


def template(
    chart: Path,
    *,
    release: str,
    namespace: str,
    values: Mapping[str, Any],
    api_versions: Sequence[str] = (),
    include_tests: bool = False,
    helm: Path | None = None,
) -> str:
    """The chart rendered as ``helm template`` prints it."""
    with tempfile.TemporaryDirectory(prefix="llmops-helm-") as tmp:
        values_file = Path(tmp) / "values.yaml"
        values_file.write_text(yaml.safe_dump(dict(values)))
        args = [
            str(helm or helm_binary()),
            "template",
            release,
            str(chart),
            "--namespace",
            namespace,
            "--kube-version",
            KUBE_VERSION,
            "--values",
            str(values_file),
        ]
        for api in api_versions:
            args += ["--api-versions", api]
        if not include_tests:
            args.append("--skip-tests")
        # Keep helm away from the user's repositories and caches: rendering needs none.
        env = {**os.environ, "HELM_CACHE_HOME": tmp, "HELM_CONFIG_HOME": tmp, "HELM_DATA_HOME": tmp}
        res = subprocess.run(args, capture_output=True, text=True, env=env, check=False, timeout=120)
    if res.returncode != 0:
        raise HelmError(f"helm template failed ({' '.join(args[1:4])}):\n{res.stderr.strip()}")
    return res.stdout
