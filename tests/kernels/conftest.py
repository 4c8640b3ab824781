"""Kernel tests run the Triton kernel on CPU through Triton's interpreter unless told otherwise.

TRITON_INTERPRET is read when a kernel is defined, so it is set here, before anything imports
kernels.ops.ce_rows_triton. On a GPU machine run with TRITON_INTERPRET=0 to test the compiled kernel.
"""

import os

os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def seed():
    """A fresh seed per test; printed so a failure can be replayed (pytest shows it with the failure)."""
    value = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(value)
    print(f"seed={value}")
    return value
