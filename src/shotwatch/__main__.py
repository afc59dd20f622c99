import sys

from shotwatch.cli.main import main

sys.exit(main())
