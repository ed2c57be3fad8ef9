import sys

from pixcamd.cli import main

sys.exit(main())
