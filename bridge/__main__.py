"""``python -m bridge`` is the ``stepedit`` command."""

import sys

from bridge.cli import main

sys.exit(main())
