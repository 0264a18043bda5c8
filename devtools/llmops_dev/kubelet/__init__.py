"""The fake kubelet: runs the operator's pods (TGI simulators, Job commands) as local processes.

``python -m llmops_dev.kubelet --kubeconfig PATH --state-dir DIR``; the pieces are ``agent``
(the node loop), ``pod`` (one pod's life), ``spec``/``status``/``volumes`` (what a pod asks for
and what its status says), ``kube`` (a small API client with informers), ``provisioner``
(PVCs) and ``proxy`` (Services on loopback).
"""

from llmops_dev.kubelet.agent import FAKE_NODE_ANNOTATION, Kubelet, main, running_pid

__all__ = ["FAKE_NODE_ANNOTATION", "Kubelet", "main", "running_pid"]
