"""RQ worker settings for the interop test: `rq worker -c rq_settings`.

The Redis URL comes from the environment (the test owns one database per
run). Importing this module starts the z4j agent inside the worker process.
"""

import logging
import os

REDIS_URL = os.environ["Z4J_RQ_REDIS_URL"]

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")

from z4j_rq import register_worker_bootstrap  # noqa: E402

register_worker_bootstrap()
