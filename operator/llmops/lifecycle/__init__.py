"""The pure lifecycle: ``plan()`` decides each reconcile pass from spec, status and observations."""

from llmops.lifecycle.observations import Observations
from llmops.lifecycle.plan import Event, Plan, plan

__all__ = ["Event", "Observations", "Plan", "plan"]
