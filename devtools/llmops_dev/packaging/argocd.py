"""The argocd-cm snippet that installs the LLMDeployment health check in Argo CD."""

from __future__ import annotations

__all__ = ["HEALTH_KEY", "argocd_cm"]

# Argo CD's key for a custom health check: resource.customizations.health.<group>_<kind>.
HEALTH_KEY = "resource.customizations.health.llmops.io_LLMDeployment"


def argocd_cm(header: str, health_lua: str) -> str:
    """A patch for the argocd-cm ConfigMap that embeds ``health_lua`` verbatim."""
    if any(line != line.rstrip() for line in health_lua.splitlines()):
        raise ValueError("health.lua has trailing whitespace: a YAML block scalar would not keep it verbatim")
    body = "".join(f"    {line}\n" if line else "\n" for line in health_lua.rstrip("\n").splitlines())
    return (
        header
        + "# Merge into Argo CD's argocd-cm (kubectl -n argocd patch configmap argocd-cm --patch-file ...),\n"
        + "# or copy the key into the argocd-cm of your Argo CD installation's values.\n"
        + "apiVersion: v1\n"
        + "kind: ConfigMap\n"
        + "metadata:\n"
        + "  name: argocd-cm\n"
        + "  namespace: argocd\n"
        + "  labels:\n"
        + "    app.kubernetes.io/name: argocd-cm\n"
        + "    app.kubernetes.io/part-of: argocd\n"
        + "data:\n"
        + f"  {HEALTH_KEY}: |\n"
        + body
    )
