"""Signed request IDs: which deployment, revision and track produced an answer.

An ID is ``llm1.<payload>.<signature>``, both base64url without padding. The payload is
``namespace/name|revision|track|unix seconds|nonce``; the signature is the first 16 bytes of
HMAC-SHA256 over ``llm1.<payload>`` with the deployment's signing key (a Secret the operator
creates once and mounts into every gateway of the deployment). So any replica, of any revision,
before or after a rollout, can check an ID and read its revision and track without shared state,
and nobody without the key can make one up. IDs carry no client data.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

__all__ = ["MAX_ID_LENGTH", "InvalidRequestId", "RequestId", "RequestIdSigner"]

_PREFIX = "llm1"
_SIGNATURE_BYTES = 16
MAX_ID_LENGTH = 600
"""Longer strings are refused before any decoding (the longest real ID is about 470 characters)."""


class InvalidRequestId(ValueError):
    """A request ID that is malformed, forged, or from another deployment; the message says which."""


@dataclass(frozen=True)
class RequestId:
    """What a valid ID says about the answer it was given to."""

    deployment: str
    """namespace/name of the LLMDeployment."""
    revision: str
    track: str
    issued_at: int
    """Unix seconds."""
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RequestIdSigner:
    """Makes and checks the IDs of one deployment."""

    def __init__(self, key: bytes, deployment: str) -> None:
        if len(key) < 16:
            raise ValueError("the signing key must be at least 16 bytes")
        self._key = key
        self.deployment = deployment

    def _signature(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def issue(self, *, revision: str, track: str, now: float, nonce: str | None = None) -> str:
        """A new ID for an answer of `revision` on `track`."""
        nonce = nonce if nonce is not None else secrets.token_urlsafe(9)
        payload = "|".join((self.deployment, revision, track, str(int(now)), nonce))
        signed = f"{_PREFIX}.{_b64(payload.encode())}"
        return f"{signed}.{_b64(self._signature(signed))}"

    def verify(self, text: object) -> RequestId:
        """The content of a valid ID; raises InvalidRequestId otherwise."""
        if not isinstance(text, str) or len(text) > MAX_ID_LENGTH:
            raise InvalidRequestId("request_id is not a request ID of this gateway")
        prefix, _, rest = text.partition(".")
        encoded, _, signature = rest.partition(".")
        if prefix != _PREFIX or not encoded or not signature:
            raise InvalidRequestId("request_id is not a request ID of this gateway")
        try:
            fields = _unb64(encoded).decode().split("|")
            presented = _unb64(signature)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise InvalidRequestId("request_id is not a request ID of this gateway") from None
        if len(fields) != 5 or not fields[3].isdigit():
            raise InvalidRequestId("request_id is not a request ID of this gateway")
        deployment, revision, track, issued, nonce = fields
        if deployment != self.deployment:
            raise InvalidRequestId("request_id was issued by another deployment")
        if not hmac.compare_digest(presented, self._signature(f"{prefix}.{encoded}")):
            raise InvalidRequestId("request_id has an invalid signature")
        return RequestId(deployment, revision, track, int(issued), nonce)
