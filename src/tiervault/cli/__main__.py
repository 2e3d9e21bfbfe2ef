"""``python -m tiervault.cli``: the ``tiervault`` command."""

import sys

from tiervault.cli import main

sys.exit(main())
