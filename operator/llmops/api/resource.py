"""The LLMDeployment resource as a whole: apiVersion, kind, metadata, spec, status.

`LLMDeployment.model_validate(body)` turns an object from the apiserver (or a sample file) into
typed, defaulted models; `metadata` stays a plain dict (kopf and the apiserver own it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field

from llmops.api.common import ApiModel, cel
from llmops.api.constants import API_VERSION, KIND
from llmops.api.spec import LLMDeploymentSpec
from llmops.api.status import LLMDeploymentStatus

# Child names are "<name>-download-<8 hex>" (Job, whose name must fit a 63-character label) and
# "<name>" (Service, a DNS-1035 label): so the name is a DNS-1035 label of at most 45 characters.
NAME_MAX_LENGTH = 45
# With evaluation.schedule there is also the CronJob "<name>-eval-scheduled", and a CronJob's
# name is at most 52 (its Jobs append an 11-character suffix): 52 - len("-eval-scheduled").
SCHEDULED_NAME_MAX_LENGTH = 37
ROOT_VALIDATIONS: tuple[dict[str, str], ...] = (
    cel(
        f"size(self.metadata.name) <= {NAME_MAX_LENGTH}",
        f"metadata.name must be at most {NAME_MAX_LENGTH} characters: children are named "
        "<name>-download-<hash> and must fit in 63",
    ),
    cel(
        "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "metadata.name must start with a letter and contain only lowercase letters, digits and '-' "
        "(it names the Service)",
    ),
    cel(
        "!has(self.spec.evaluation) || !has(self.spec.evaluation.schedule)"
        f" || size(self.metadata.name) <= {SCHEDULED_NAME_MAX_LENGTH}",
        f"metadata.name must be at most {SCHEDULED_NAME_MAX_LENGTH} characters with evaluation.schedule: "
        "the CronJob <name>-eval-scheduled must fit in 52",
    ),
)


class LLMDeployment(ApiModel):
    """An LLMDeployment as stored: parsed spec and status, raw metadata."""

    # Objects read from the apiserver carry whatever kopf or kubectl added; ignore, do not fail.
    model_config = ConfigDict(extra="ignore")

    api_version: Literal["llmops.io/v1alpha1"] = API_VERSION
    kind: Literal["LLMDeployment"] = KIND
    metadata: dict[str, Any] = {}
    spec: LLMDeploymentSpec
    status: LLMDeploymentStatus = Field(default_factory=LLMDeploymentStatus)

    @property
    def name(self) -> str:
        """metadata.name."""
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        """metadata.namespace."""
        return str(self.metadata.get("namespace", ""))

    @property
    def uid(self) -> str:
        """metadata.uid (empty before the object is created)."""
        return str(self.metadata.get("uid", ""))


def parse(body: Mapping[str, Any] | LLMDeployment) -> LLMDeployment:
    """The typed LLMDeployment for an object body (a kopf Body, a dict, or one already parsed)."""
    if isinstance(body, LLMDeployment):
        return body
    return LLMDeployment.model_validate(
        {
            "apiVersion": body.get("apiVersion", API_VERSION),
            "kind": body.get("kind", KIND),
            "metadata": dict(body.get("metadata") or {}),
            "spec": body.get("spec") or {},
            "status": body.get("status") or {},
        }
    )
