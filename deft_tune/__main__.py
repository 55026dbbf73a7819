import sys

from deft_tune.cli import main

sys.exit(main())
