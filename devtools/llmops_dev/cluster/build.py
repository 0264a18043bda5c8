"""Finding (and if needed building) the control-plane binaries.

The build itself is ``cluster/build.sh`` in the repository: it hashes the Go module files
into a cache key, so a warm cache answers in milliseconds and a cold one builds with
progress on stderr. ``LLMOPS_BIN_DIR`` overrides it with a folder of prebuilt binaries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from llmops_dev.processes import ClusterError

__all__ = ["REQUIRED", "binaries", "repo_root"]

REQUIRED = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "helm")


def repo_root() -> Path:
    """The source checkout (the devcluster builds from its cluster/ folder)."""
    if env := os.environ.get("LLMOPS_REPO"):
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "cluster" / "build.sh").is_file():
            return parent
    raise ClusterError("cannot find the repository's cluster/build.sh; set LLMOPS_REPO to the checkout")


def binaries(progress: Callable[[str], None] | None = None) -> Path:
    """The folder holding every binary in REQUIRED, building them if the cache is cold."""
    if env := os.environ.get("LLMOPS_BIN_DIR"):
        bin_dir = Path(env)
    else:
        if shutil.which("go") is None:
            raise ClusterError(
                "the Go toolchain is missing: 'go' is not on PATH. The local cluster is built from Go "
                "modules; install Go >= 1.26, or set LLMOPS_BIN_DIR to a folder of prebuilt binaries."
            )
        script = repo_root() / "cluster" / "build.sh"
        if progress:
            progress("checking the control-plane build cache (a cold build takes several minutes)")
        res = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise ClusterError(f"building the control plane failed (cluster/build.sh):\n{res.stderr[-3000:]}")
        bin_dir = Path(res.stdout.strip().splitlines()[-1])
    missing = [b for b in REQUIRED if not (bin_dir / b).exists()]
    if missing:
        raise ClusterError(f"{bin_dir} lacks {', '.join(missing)}")
    return bin_dir
