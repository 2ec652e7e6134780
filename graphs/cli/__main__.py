"""``python -m graphs.cli``: the ``ttc`` command."""

import sys

from graphs.cli.main import main

sys.exit(main())
