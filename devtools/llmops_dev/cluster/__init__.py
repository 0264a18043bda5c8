"""The local development cluster and the simulated data plane.

A real control plane (etcd, kube-apiserver, controller-manager, scheduler) built from Go
modules, with kwok nodes standing in for kubelets, for `make dev` and the integration tests.
See ``controlplane.py`` for the start sequence and ``build.py`` for where the binaries come from.
"""

from llmops_dev.cluster.controlplane import Cluster, ToolFailed, default_state_dir
from llmops_dev.processes import ClusterError

__all__ = ["Cluster", "ClusterError", "ToolFailed", "default_state_dir"]
