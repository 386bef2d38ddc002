"""``python -m tunesift`` runs the command line."""

import sys

from tunesift.cli.main import main

sys.exit(main())
