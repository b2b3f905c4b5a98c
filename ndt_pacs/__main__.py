"""``python -m ndt_pacs`` equals the ``pacs`` command."""

import sys

from ndt_pacs.cli import main

sys.exit(main())
