"""python -m handgrad: the same as the `handgrad` command."""

import sys

from handgrad.tools.cli import main

sys.exit(main())
