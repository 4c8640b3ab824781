"""Make colossalai 0.5.0's Booster plugins run on CPU processes (gloo), for tests and CPU benchmarks.

Applied only when no GPU is present (`apply()` is a no-op otherwise). Each patch names the upstream behaviour it
works around; none changes what a plugin computes, only where colossalai insists on a GPU for bookkeeping.
"""

import contextlib

import torch

_applied = False


def apply() -> None:
    """Patch colossalai's CpuAccelerator and LowLevelZero sanity check (idempotent, CPU only)."""
    global _applied
    if _applied or torch.cuda.is_available():
        return
    from colossalai.accelerator.cpu_accelerator import CpuAccelerator
    from colossalai.zero.low_level import low_level_optim

    # Upstream: CpuAccelerator.synchronize raises RuntimeError; ZeRO and checkpoint IO call it after every
    # collective. CPU ops are synchronous, so torch.cpu.synchronize (a no-op) is the exact equivalent.
    CpuAccelerator.synchronize = lambda self, device=None: torch.cpu.synchronize()
    # Upstream: Stream / current_stream / stream raise; LowLevelZero creates a side stream for its reductions
    # (overlap_communication=False still asks for one). torch.cpu.Stream is the single-stream CPU stand-in.
    CpuAccelerator.Stream = lambda self, device=None, priority=0, **kw: torch.cpu.Stream()
    CpuAccelerator.current_stream = lambda self, device=None: torch.cpu.current_stream()
    CpuAccelerator.default_stream = lambda self, device=None: torch.cpu.current_stream()
    CpuAccelerator.stream = lambda self, stream_: contextlib.nullcontext()
    # Upstream: empty_cache raises; there is no caching allocator to empty on CPU.
    CpuAccelerator.empty_cache = lambda self: None
    # Upstream: current_device raises; tensors created with `device=current_device()` belong on "cpu".
    CpuAccelerator.current_device = lambda self: torch.device("cpu")
    # Upstream: get_rng_state(device) forwards `device` to torch.get_rng_state(), which takes no argument
    # (TypeError); the CPU generator is the only one.
    CpuAccelerator.get_rng_state = lambda self, device=None: torch.get_rng_state()
    CpuAccelerator.set_rng_state = lambda self, new_state, device=None: torch.set_rng_state(new_state)
    CpuAccelerator.manual_seed = lambda self, seed: torch.manual_seed(seed)
    CpuAccelerator.manual_seed_all = lambda self, seed: torch.manual_seed(seed)
    # Upstream: memory counters raise; report 0 (peak memory on CPU is read from the process instead).
    for name in ("max_memory_allocated", "memory_allocated", "max_memory_reserved", "memory_reserved"):
        setattr(CpuAccelerator, name, lambda self, device=None: 0)
    CpuAccelerator.reset_peak_memory_stats = lambda self, device=None: None

    # Upstream: LowLevelZeroOptimizer._sanity_checks asserts the accelerator is cuda or npu, although stage 2
    # with overlap_communication=False only needs collectives that gloo provides. Keep its dtype check.
    def _sanity_checks(self):
        for group in self.optim.param_groups:
            for param in group["params"]:
                if not getattr(param, "skip_zero_check", False):
                    assert param.dtype == self._dtype, (
                        f"Parameters are expected to have the same dtype `{self._dtype}`, but got `{param.dtype}`")

    low_level_optim.LowLevelZeroOptimizer._sanity_checks = _sanity_checks

    # Upstream: pipeline p2p asks `torch.distributed.is_hccl_available()` whenever NCCL is unavailable, and CPU
    # builds of torch have no such function (AttributeError on the first send between pipeline stages). Without
    # NCCL the process group is gloo here, which is exactly the answer "not an NCCL/HCCL group".
    from colossalai.pipeline import p2p

    p2p._check_for_nccl_hccl_backend = lambda group: False
    _unshare_tied_tensors()
    _applied = True


def _unshare_tied_tensors() -> None:
    """Upstream: checkpoint_io's save_state_dict moves each tensor to the CPU (`x.data.cpu()`) and hands the dict
    to safetensors. On a GPU that makes one copy per key; on CPU `.cpu()` returns the tensor itself, so the two keys
    of tied embeddings (embed_tokens.weight, lm_head.weight) share memory and safetensors refuses the file
    (RuntimeError at the first checkpoint). Give every key after the first of a storage its own copy, as a GPU
    run's files have."""
    from colossalai.checkpoint_io import general_checkpoint_io, hybrid_parallel_checkpoint_io, utils

    original = utils.save_state_dict

    def save_state_dict(state_dict: dict, checkpoint_file_path: str, use_safetensors: bool) -> None:
        if use_safetensors:
            seen, copy = set(), {}
            for key, value in state_dict.items():
                if torch.is_tensor(value):
                    ptr = value.data.untyped_storage().data_ptr()
                    value = value.detach().clone() if ptr in seen else value
                    seen.add(ptr)
                copy[key] = value
            state_dict = copy
        original(state_dict, checkpoint_file_path, use_safetensors)

    for module in (utils, general_checkpoint_io, hybrid_parallel_checkpoint_io):
        module.save_state_dict = save_state_dict
