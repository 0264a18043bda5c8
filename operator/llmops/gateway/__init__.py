"""The gateway: a small HTTP proxy in every model-server pod, in front of the engine.

It runs as `llmops gateway` in its own container (the operator's image) on the port the Service
targets, while the engine listens on localhost only. Per request it checks the client's API key
(keys), gives the answer a signed request ID naming the deployment, revision and track (ids),
forwards the request over keep-alive connections to the engine (upstream) and streams the answer
back unbuffered (server), and counts it (metrics). `POST /v1/feedback` takes the users' ratings of answers by request ID (feedback).
"""

from llmops.gateway.feedback import Feedback, FeedbackError, parse_feedback
from llmops.gateway.ids import InvalidRequestId, RequestId, RequestIdSigner
from llmops.gateway.keys import KeyStore
from llmops.gateway.server import Gateway, GatewayConfig

__all__ = [
    "Feedback",
    "FeedbackError",
    "Gateway",
    "GatewayConfig",
    "InvalidRequestId",
    "KeyStore",
    "RequestId",
    "RequestIdSigner",
    "parse_feedback",
]
