"""``python -m graphmae2`` is ``python train.py``."""
import sys

from .cli import main

sys.exit(main())
