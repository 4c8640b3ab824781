"""Forward passes of the base model that the corpus-reading strategies and the step-0 diagnostics share."""

import torch


def windows_of(docs: list[list[int]], bos: list[int], length: int, max_tokens: int) -> list[list[int]]:
    """Consecutive windows of `length` tokens (BOS first, when the tokenizer has one) cut from the documents laid end
    to end, until `max_tokens` tokens are taken."""
    body = length - len(bos)
    flat: list[int] = []
    for ids in docs:
        flat.extend(ids)
        if len(flat) >= max_tokens:
            break
    flat = flat[:max_tokens]
    return [bos + flat[i:i + body] for i in range(0, len(flat), body) if len(flat[i:i + body]) > 1]


def pad_right(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask), each [len(seqs), longest], the sequences left-aligned and padded with 0."""
    width = max(map(len, seqs))
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
        mask[r, :len(s)] = 1
    return ids, mask


@torch.no_grad()
def final_hidden(model, windows: list[list[int]], batch: int = 16) -> torch.Tensor:
    """The decoder's last hidden states (after its final norm: what lm_head reads) at every position of every
    window, stacked (tokens x hidden), float32."""
    decoder = model.get_decoder()
    out = []
    for i in range(0, len(windows), batch):
        ids, mask = pad_right(windows[i:i + batch])
        h = decoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
        out.append(h[mask.bool()])
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size)


def logsumexp_rows(hidden: torch.Tensor, rows: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """logsumexp over `rows` of hidden @ rows.T, per hidden state, without holding the whole logits matrix."""
    rows = rows.float()
    return torch.cat([torch.logsumexp(hidden[i:i + chunk] @ rows.T, dim=1) for i in range(0, len(hidden), chunk)])
