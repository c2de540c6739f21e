import sys

from hybridviz.cli import main

sys.exit(main())
