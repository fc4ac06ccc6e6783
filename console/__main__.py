"""``python3 -m console``: the same as the ``stackdeck`` command."""

import sys

from console.cli import main

sys.exit(main())
