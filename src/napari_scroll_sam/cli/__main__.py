"""``python -m napari_scroll_sam.cli``: the same as ``napari-scroll-sam``."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
