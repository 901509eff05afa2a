"""Settings for the benchmark's worker processes: the test project's, with the benchmark's
gateway configuration passed in as JSON by ``bench/campaign.py``."""

import json
import os

from testproject.settings import *  # noqa: F403

if os.environ.get("SMSCLUB_BENCH"):
    SMSCLUB = json.loads(os.environ["SMSCLUB_BENCH"])
DEBUG = False
