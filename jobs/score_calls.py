"""Ray job entrypoint: score every call under an input prefix.

    ray job submit --address $RAY_ADDRESS --working-dir . -- \
        python jobs/score_calls.py --input s3://calls/2026-11-22/ --output s3://coaching/

Same arguments as ``callcoach score``; the driver joins the cluster it is submitted to.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
