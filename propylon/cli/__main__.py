import sys

from propylon.cli.main import main

sys.exit(main())
