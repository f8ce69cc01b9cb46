import sys

from mmrqa_bids.cli.run import main

sys.exit(main())
