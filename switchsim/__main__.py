"""`python -m switchsim`: the same command as the `switchsim` script."""

import sys

from switchsim.cli import main

sys.exit(main())
