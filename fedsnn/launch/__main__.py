"""python -m fedsnn.launch: the same as fedsnn-run."""

import sys

from fedsnn.launch import main

sys.exit(main())
