"""``python -m napari_pathsae.cli``: the pathsae command."""

import sys

from .commands import main

sys.exit(main())
