"""`python -m flowattr.cli`: the same as the `flowattr` command."""

import sys

from flowattr.cli import main

sys.exit(main())
