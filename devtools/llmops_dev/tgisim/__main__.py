"""``python -m llmops_dev.tgisim``: run a TGI simulator."""

import sys

from llmops_dev.tgisim.cli import main

sys.exit(main())
