import sys

from mmfer.cli import main

sys.exit(main())
