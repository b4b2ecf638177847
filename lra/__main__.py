"""`python -m lra ...`: the `lra` command, where console scripts are not installed."""

from __future__ import annotations

import sys

from lra.cli import main

sys.argv[0] = "lra"  # usage lines (LightningCLI's included) name the command as the console script does
sys.exit(main())
