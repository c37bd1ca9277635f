"""``python -m sidecar.cli``: the same as ``sidecar``."""

import sys

from sidecar.cli import main

sys.exit(main())
