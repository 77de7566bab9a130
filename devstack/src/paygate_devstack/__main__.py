"""`python -m paygate_devstack run` starts the local stack; see cli.py."""

import sys
import warnings

from paygate_devstack.cli import main

# platformdirs (via a dependency) warns when XDG_RUNTIME_DIR is unset, as on CI and as root
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

sys.exit(main())
