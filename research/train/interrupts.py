"""SIGINT and SIGTERM during training: finish the step, save a checkpoint, exit with one line.

While the training loop runs, a handler only records the signal. Once per step every rank all-reduces (MAX) what
it recorded over the default process group, so all ranks learn of it at the same step and stop together, however
the signal arrived: a terminal's Ctrl-C reaches every process of the foreground process group, torchrun (which
starts each worker in a session of its own) forwards the signal it got to each worker separately, and `kill`
may reach one rank only. A repeated signal changes nothing: the checkpoint is being written (SIGKILL stops a run
at once; the previous complete checkpoint stays the latest).
"""

import os
import signal
import time

import torch
import torch.distributed as dist

SIGNALS = (signal.SIGINT, signal.SIGTERM)
FAULT_ENV = "GRAFT_FAULT"
"""Fault injection for tests: `wait_after_step:N` makes every rank wait after step N (up to WAIT_S seconds) until it
has received a signal, so that a test delivers one at a known step."""
WAIT_S = 120.0


def exit_status(signum: int) -> int:
    """The shell's status for a process ended by `signum`: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


class Interrupted(Exception):
    """Raised by the training loop once every rank has stopped at `step` (and saved `checkpoint`, None when the
    run writes none)."""

    def __init__(self, signum: int, step: int, checkpoint):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        super().__init__(f"interrupted by {signal.Signals(signum).name} at step {step}")

    def message(self) -> str:
        if self.checkpoint is None:
            return f"interrupted at step {self.step}: no checkpoint (benchmark mode)"
        return (f"interrupted at step {self.step}: checkpoint saved to {self.checkpoint}; "
                "rerun the same command to resume")


class StopSignals:
    """Inside `with StopSignals() as stop:`, SIGINT and SIGTERM are recorded (the first one) instead of acted on;
    `stop.agreed()` says, identically on every rank, whether any rank has received one."""

    def __init__(self):
        self.received = 0
        self._previous = {}

    def __enter__(self) -> "StopSignals":
        self._previous = {s: signal.signal(s, self._record) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _record(self, signum, frame) -> None:
        self.received = self.received or signum

    def agreed(self) -> int:
        """The signal a rank received (the largest number if several), 0 if none: one all-reduce, all ranks."""
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([self.received], dtype=torch.int64, device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def fault_wait(self, step: int) -> None:
        """GRAFT_FAULT=wait_after_step:N (tests): after step N, wait until a signal has arrived."""
        if os.environ.get(FAULT_ENV, "") != f"wait_after_step:{step}":
            return
        deadline = time.monotonic() + WAIT_S
        while not self.received and time.monotonic() < deadline:
            time.sleep(0.02)
