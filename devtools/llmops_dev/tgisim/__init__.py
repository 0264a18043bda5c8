"""A TGI simulator: a process that speaks Hugging Face TGI's HTTP API (see ``cli``)."""

from llmops_dev.tgisim.behaviour import Behaviour
from llmops_dev.tgisim.cli import main, run_in_thread
from llmops_dev.tgisim.server import VERSION, Simulator

__all__ = ["VERSION", "Behaviour", "Simulator", "main", "run_in_thread"]
