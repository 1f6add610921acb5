"""Ray job entrypoint: score every call under an input prefix.

    ray job submit --address $RAY_ADDRESS --working-dir . -- \
        python jobs/score_calls.py --input s3://calls/2026-11-22/ --output s3://coaching/

Same arguments as ``callcoach score``; the driver joins the cluster it is submitted to.
"""

import os
import sys

# this checkout's package (pipelines/callcoach), ahead of any installed copy; the image
# installs the same tree, so on a cluster both are one
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pipelines"))

from callcoach.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
