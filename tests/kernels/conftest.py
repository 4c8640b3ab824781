"""Kernel tests run the Triton kernel on CPU through Triton's interpreter unless told otherwise.

TRITON_INTERPRET is read when a kernel is defined, so it is set here, before anything imports
kernels.ops.ce_rows_triton. On a GPU machine run with TRITON_INTERPRET=0 to test the compiled kernel.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
