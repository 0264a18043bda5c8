"""The load generator's users rating answers through the real gateway (in front of a TGI
simulator): exact shares of rated and "down" answers, counted by the gateway as
llmops_feedback_total, which the drift check's feedback signal reads."""

from __future__ import annotations

import contextlib
import re
import urllib.request

from llmops.gateway import Gateway, GatewayConfig, RequestIdSigner
from llmops_dev.gateway_thread import run_gateway_in_thread
from llmops_dev.loadgen import Traffic
from llmops_dev.tgisim import Behaviour, Simulator, run_in_thread
from testkit import wait_for


def _feedback_counts(health_url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{health_url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    counts: dict[str, float] = {}
    for m in re.finditer(r"^llmops_feedback_total\{([^}]*)\} (\S+)$", text, re.M):
        rating = re.search(r'rating="([^"]+)"', m.group(1))
        assert rating is not None
        counts[rating.group(1)] = counts.get(rating.group(1), 0.0) + float(m.group(2))
    return counts


def test_users_rate_an_exact_share_of_answers_and_of_those_an_exact_share_down() -> None:
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(run_in_thread(Simulator(Behaviour(), revision="rev-a")))
        gateway = Gateway(
            GatewayConfig(upstream=engine, deployment="ns/m", revision="rev-a", track="stable"),
            RequestIdSigner(b"k" * 32, "ns/m"),
            None,
        )
        api, health = stack.enter_context(run_gateway_in_thread(gateway))
        traffic = stack.enter_context(Traffic(None, url=api, rate=500, limit=40, feedback=0.5, down=0.2))
        wait_for("40 requests answered", lambda: traffic.sent >= 40, 30, 0.05)
        assert traffic.failed == 0
        assert (traffic.rated, traffic.rated_down) == (20, 4)
        assert _feedback_counts(health) == {"down": 4.0, "up": 16.0}
