import sys

from pixcamd.launch import main

sys.exit(main())
