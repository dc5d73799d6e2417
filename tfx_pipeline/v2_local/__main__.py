"""``python -m tfx_pipeline.v2_local --spec SPEC --local_root DIR``: runs a compiled spec locally (see :mod:`.cli`)."""
import sys

from tfx_pipeline.v2_local.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
