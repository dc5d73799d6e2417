"""``python -m tfx_pipeline.v2_local --spec SPEC --local_root DIR``: runs a compiled spec locally."""
import sys

from tfx_pipeline.v2_local.driver import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
