"""Ops: the row kernels (Triton, PyTorch), the chunk loop and its autograd.Function."""
