"""``python -m propylon.demo http-server | grpc-server | grpc-client``."""

import sys

from propylon.demo.cli import main

if __name__ == "__main__":
    sys.exit(main())
