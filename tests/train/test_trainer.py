"""research.train.trainer pieces that run in one process: the freeze policy and the optimizer state across stages."""



import torch
from train_helpers import VOCAB, tiny_model

from research.train.token_loss import token_losses
from research.train.trainer import apply_freeze


def _model(tmp_path):
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(tiny_model(tmp_path / "m"), attn_implementation="eager")


def test_freeze_keeps_optimizer_state_across_stages(tmp_path):
    model = _model(tmp_path)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.randint(1, VOCAB, (2, 16), generator=torch.Generator().manual_seed(0))

    def step():
        token_losses(model(input_ids=ids).logits, ids).mean().backward()
        opt.step()
        opt.zero_grad()

    n = apply_freeze(model, "embeddings_only")
    assert n == 2 * VOCAB * 32
    frozen = model.model.layers[0].self_attn.q_proj.weight
    before = frozen.detach().clone()
    step(), step()
    head = model.lm_head.weight
    assert frozen not in opt.state and torch.equal(frozen, before)
    carried = opt.state[head]["exp_avg"].clone()
    assert float(opt.state[head]["step"]) == 2
    apply_freeze(model, "full")
    assert torch.equal(opt.state[head]["exp_avg"], carried)  # a stage change keeps the state
    step()
    assert float(opt.state[head]["step"]) == 3 and float(opt.state[frozen]["step"]) == 1
