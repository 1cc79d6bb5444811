"""`python -m hfaid`: the same entry point as the `hfaid` console script."""

import sys

from hfaid.cli import main

sys.exit(main())
