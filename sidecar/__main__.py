"""``python -m sidecar``: the ``sidecar`` command, for when the venv's ``bin`` is not on PATH."""

import sys

from sidecar.cli import main

sys.exit(main())
