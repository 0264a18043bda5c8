"""What the fake kubelet derives from a pod spec, without I/O.

- Images: which ones this "registry" can run (the operator image, by repository, and TGI and
  vLLM images, any tag), their entrypoints and image environment, and the kubelet's pull errors.
- Environment: ``env`` / ``envFrom`` with values from Secrets, ConfigMaps and the downward API,
  ``$(VAR)`` expansion, and the kubelet's exact CreateContainerConfigError messages.
- Paths: a container path under a volume mount rewritten to the host directory behind it.
- Ports and probes: where a server container listens and what its HTTP probes ask for.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from llmops.api.constants import DEFAULT_TGI_IMAGE, DEFAULT_VLLM_IMAGE, OPERATOR_IMAGE

__all__ = [
    "IMAGE_ENTRYPOINT",
    "IMAGE_ENV",
    "OPERATOR",
    "SERVERS",
    "TGI",
    "VLLM",
    "ConfigError",
    "Mounts",
    "expand",
    "http_probe",
    "image_repository",
    "listen_port",
    "pull_error",
    "referenced_objects",
    "resolve_env",
    "runtime_for",
]

Obj = dict[str, Any]
TGI = "tgi"
VLLM = "vllm"
OPERATOR = "operator"
SERVERS = frozenset({TGI, VLLM})
"""Runtimes whose containers become a simulator process (in the engine's mode)."""


def image_repository(image: str) -> str:
    """The repository part of an image reference (no tag, no digest)."""
    name = image.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


_RUNTIMES = {
    image_repository(OPERATOR_IMAGE): OPERATOR,
    image_repository(DEFAULT_TGI_IMAGE): TGI,
    image_repository(DEFAULT_VLLM_IMAGE): VLLM,
}

IMAGE_ENTRYPOINT = {OPERATOR: ["llmops"], TGI: ["text-generation-launcher"], VLLM: ["vllm", "serve"]}
"""The images' ENTRYPOINT, used when a container sets no command."""

IMAGE_ENV = {
    OPERATOR: {"PYTHONUNBUFFERED": "1"},
    # TGI's Dockerfile: the launcher listens on $PORT and caches models under $HF_HOME.
    TGI: {"PORT": "80", "HF_HOME": "/data", "HF_HUB_ENABLE_HF_TRANSFER": "1"},
    # vLLM's image sets no port: `vllm serve` listens on --port, 8000 by default.
    VLLM: {"VLLM_USAGE_SOURCE": "production-docker-image"},
}
"""The images' ENV, which a container's own env overrides."""


def runtime_for(image: str) -> str | None:
    """TGI, VLLM, OPERATOR, or None for an image this fake registry does not have."""
    return _RUNTIMES.get(image_repository(image))


def pull_error(image: str) -> tuple[str, str]:
    """The kubelet's ErrImagePull and ImagePullBackOff messages for an image that does not exist."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        ref = f"docker.io/library/{image}"
    elif "." in first or ":" in first or first == "localhost":
        ref = image
    else:
        ref = f"docker.io/{image}"
    if ":" not in ref.rsplit("/", 1)[-1] and "@" not in ref:
        ref += ":latest"
    err = (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": '
        f'failed to resolve reference "{ref}": {ref}: not found'
    )
    return err, f'Back-off pulling image "{image}"'


# -- environment ------------------------------------------------------------------------------


class ConfigError(Exception):
    """The container's configuration cannot be resolved (CreateContainerConfigError)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def referenced_objects(container: Obj) -> set[tuple[str, str]]:
    """The (kind, name) of every Secret and ConfigMap the container's environment reads."""
    refs: set[tuple[str, str]] = set()
    for src in container.get("envFrom") or []:
        if "configMapRef" in src:
            refs.add(("ConfigMap", src["configMapRef"].get("name", "")))
        if "secretRef" in src:
            refs.add(("Secret", src["secretRef"].get("name", "")))
    for var in container.get("env") or []:
        vf = var.get("valueFrom") or {}
        if "configMapKeyRef" in vf:
            refs.add(("ConfigMap", vf["configMapKeyRef"].get("name", "")))
        if "secretKeyRef" in vf:
            refs.add(("Secret", vf["secretKeyRef"].get("name", "")))
    return refs


def _data(kind: str, obj: Obj) -> dict[str, str]:
    if kind == "Secret":
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    binary = {
        k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("binaryData") or {}).items()
    }
    return {**binary, **(obj.get("data") or {})}


def _not_found(kind: str, name: str) -> ConfigError:
    return ConfigError(f'{kind.lower()} "{name}" not found')


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known names are replaced, ``$$`` escapes, the rest stays."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _VAR_REF.sub(sub, value)


def _field(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def _resource(container: Obj, ref: Obj) -> str:
    resource = str(ref.get("resource", ""))
    kind, _, name = resource.partition(".")
    amounts = (container.get("resources") or {}).get(kind) or {}
    if name not in amounts and kind == "requests":
        amounts = (container.get("resources") or {}).get("limits") or {}
    value = parse_quantity(amounts.get(name, "0"))
    divisor = parse_quantity(ref.get("divisor") or "1")
    return str(math.ceil(value / divisor)) if divisor else "0"


def resolve_env(
    container: Obj,
    pod: Obj,
    objects: Mapping[tuple[str, str], Obj | None],
    *,
    pod_ip: str = "",
    host_ip: str = "",
) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom, then env (later wins).

    ``objects`` holds every (kind, name) from `referenced_objects`, None when it does not exist.
    Raises ConfigError with the kubelet's message for a missing, non-optional Secret, ConfigMap or key.
    """
    ns = pod.get("metadata", {}).get("namespace", "")
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if field not in src:
                continue
            name = src[field].get("name", "")
            obj = objects.get((kind, name))
            if obj is None:
                if src[field].get("optional"):
                    continue
                raise _not_found(kind, name)
            prefix = src.get("prefix", "")
            env.update({prefix + k: v for k, v in _data(kind, obj).items()})
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        vf = var["valueFrom"]
        for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            if field in vf:
                ref = vf[field]
                obj = objects.get((kind, ref.get("name", "")))
                if obj is None:
                    if ref.get("optional"):
                        break
                    raise _not_found(kind, ref.get("name", ""))
                data = _data(kind, obj)
                if ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    raise ConfigError(f"couldn't find key {ref['key']} in {kind} {ns}/{ref.get('name', '')}")
                env[name] = data[ref["key"]]
                break
        else:
            if "fieldRef" in vf:
                env[name] = _field(pod, vf["fieldRef"]["fieldPath"], pod_ip, host_ip)
            elif "resourceFieldRef" in vf:
                env[name] = _resource(container, vf["resourceFieldRef"])
    return env


# -- paths ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mounts:
    """Container paths and the host paths behind them, longest container path first."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, mapping: Mapping[str, str]) -> Mounts:
        items = sorted(((p.rstrip("/") or "/", h) for p, h in mapping.items()), key=lambda i: -len(i[0]))
        return cls(tuple(items))

    def host(self, path: str) -> str | None:
        """The host path for a container path, or None when no mount covers it."""
        for mount, host in self.pairs:
            if path == mount:
                return host
            if path.startswith(mount + "/"):
                return host + path[len(mount) :]
        return None

    def rewrite_pairs(self, value: str) -> str:
        """A comma-separated ``id=/mnt/x`` list (TGI's LORA_ADAPTERS) with each path mapped."""
        entries = []
        for entry in value.split(","):
            key, eq, path = entry.partition("=")
            mapped = self.host(path.strip()) if eq and path.strip().startswith("/") else None
            entries.append(f"{key}={mapped}" if mapped is not None else entry)
        return ",".join(entries)

    def rewrite(self, value: str) -> str:
        """``/mnt/x`` and ``--flag=/mnt/x`` with the container path replaced by the host path."""
        if value.startswith("/"):
            return self.host(value) or value
        flag, eq, rest = value.partition("=")
        if eq and flag.startswith("-") and rest.startswith("/"):
            mapped = self.host(rest)
            if mapped is not None:
                return f"{flag}={mapped}"
        return value


# -- ports and probes -------------------------------------------------------------------------


def listen_port(args: list[str], env: Mapping[str, str], runtime: str = TGI) -> int:
    """Where the server listens: ``--port``/``-p`` (last wins), else for TGI ``$PORT`` else 80,
    for vLLM 8000 (`vllm serve` reads no port variable)."""
    default = "8000" if runtime == VLLM else "80"
    if runtime == VLLM:
        env = {}
    port: str | None = None
    for i, arg in enumerate(args):
        if arg in ("--port", "-p") and i + 1 < len(args):
            port = args[i + 1]
        elif arg.startswith("--port="):
            port = arg.split("=", 1)[1]
    port = port or env.get("PORT") or default
    try:
        return int(port)
    except ValueError:
        return int(default)


def http_probe(container: Obj, kind: str) -> tuple[str, int | None, Obj] | None:
    """(path, port, probe) of the container's ``kind`` probe when it is an HTTP GET; port None if unknown."""
    probe = container.get(kind)
    if not probe or "httpGet" not in probe:
        return None
    get = probe["httpGet"]
    port = get.get("port")
    if isinstance(port, str) and not port.isdigit():
        named = [p["containerPort"] for p in container.get("ports") or [] if p.get("name") == port]
        port = named[0] if named else None
    return str(get.get("path") or "/"), int(port) if port is not None else None, probe
