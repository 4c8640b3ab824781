"""Fixes to colossalai 0.5.0 behaviour that is wrong on every device (CPU-only workarounds live in cpu_compat).

`apply()` is idempotent; each patch names the upstream behaviour it corrects and changes nothing else.
"""

_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    from colossalai.zero.low_level.low_level_optim import LowLevelZeroOptimizer

    # Upstream: LowLevelZeroOptimizer.state_dict_shard reads `optim.state_dict()["state"][i]` for every parameter,
    # but torch optimizers create a parameter's state at its first update. A parameter frozen since the start
    # (an `embeddings_only` stage) has none, so saving a sharded ZeRO checkpoint raised KeyError. Give such
    # parameters an empty state, which is what torch saves and loads for them without ZeRO: after a reload they
    # start from fresh moments when they are unfrozen, exactly as in an uninterrupted run.
    original = LowLevelZeroOptimizer.state_dict_shard

    def state_dict_shard(self, *args, **kwargs):
        optim = self.optim
        own = "state_dict" in vars(optim)
        real = optim.state_dict

        def with_every_param():
            sd = real()
            for group in sd["param_groups"]:
                for index in group["params"]:
                    sd["state"].setdefault(index, {})
            return sd

        optim.state_dict = with_every_param
        try:
            yield from original(self, *args, **kwargs)
        finally:
            if own:
                optim.state_dict = real
            else:
                del optim.state_dict

    LowLevelZeroOptimizer.state_dict_shard = state_dict_shard
    _applied = True
