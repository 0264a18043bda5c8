"""``python -m llmops_dev.kubelet``: the fake kubelet process."""

import sys

from llmops_dev.kubelet.agent import main

sys.exit(main())
