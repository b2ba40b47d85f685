"""`python -m cinetune.cli` (what `accelerate launch -m` and the tests run)."""

import sys

from . import main

sys.exit(main())
