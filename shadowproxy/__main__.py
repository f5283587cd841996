"""``python -m shadowproxy``: the same as the ``shadowproxy`` console script."""

import sys

from shadowproxy.cli import main

sys.exit(main())
