"""The local Vertex driver (see :mod:`tfx_pipeline.v2_local.driver`), moved into a package to be split by concept."""
from tfx_pipeline.v2_local.driver import *  # noqa: F401,F403
