"""``python3 -m installer`` is the same as ``./install.py``."""
import sys

from installer.cli import main

sys.exit(main())
