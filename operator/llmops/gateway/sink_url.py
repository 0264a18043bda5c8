"""Whether the gateway can send to a capture sink URL: its client (aiohttp) parses the URL with
yarl when it posts. The spec's pattern admits any http(s) URL without white space; a port out of
range or a broken IPv6 bracket passed it, and the gateway then retried every record forever as
"unreachable". The operator asks this before it applies a spec (lifecycle.plan), as it compiles
the redaction patterns."""

from __future__ import annotations

from yarl import URL

__all__ = ["sink_url_problem"]


def sink_url_problem(url: str) -> str | None:
    """Why the gateway's client cannot send to ``url`` (yarl's words), or None when it can."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        return str(exc)
    if not parsed.host:
        return "it names no host"
    return None
