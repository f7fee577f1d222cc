"""`python -m loradrop_cli`: the `loradrop` command."""

import sys

from loradrop_cli.cli import main

sys.exit(main())
