"""`python -m research.train` (or `torchrun --nproc_per_node N -m research.train`): staged continual pre-training."""

import logging
import os
import sys

from research.cli import app
from research.train.trainer import run


@app("train")
def main(cfg, raw):
    return run(cfg, raw)


def _status(code) -> int:
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


if __name__ == "__main__":
    try:
        main()
        status = 0
    except SystemExit as e:
        status = _status(e.code)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # A worker whose run is over (outputs written, process group destroyed) ends here without the interpreter's
        # teardown: seen twice on 2 CPU processes, a rank blocked for good in a C-level wait while its gloo state
        # was torn down at exit, after everything had been written.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)
