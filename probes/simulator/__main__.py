import sys

from probes.simulator import main

sys.exit(main())
