"""A small exact model of SentencePiece BPE encoding, used to check that new pieces can be produced.

SentencePiece BPE starts from characters and repeatedly merges the adjacent pair whose concatenation is in
the vocabulary with the highest score (ties: leftmost pair first). A piece is therefore produced only if it
can be built from two pieces that are themselves produced; a word-list candidate whose halves are missing
wastes its slot. Tests check this model against SentencePiece itself.

One more condition comes from the HF fast tokenizer: with byte fallback it replaces a character that is not
in the vocabulary by its bytes *before* merging, while SentencePiece merges the character first. A piece
holding a character the vocabulary lacks would encode differently in the two, so every character of a new
piece must itself be a piece.
"""


def bpe_split(text: str, scores: dict[str, float]) -> list[str]:
    """The symbols SentencePiece BPE ends with on `text` (no normalisation, no dummy prefix)."""
    symbols = list(text)
    while len(symbols) > 1:
        best, best_i = None, -1
        for i in range(len(symbols) - 1):
            s = scores.get(symbols[i] + symbols[i + 1])
            if s is not None and (best is None or s > best):
                best, best_i = s, i
        if best_i < 0:
            break
        symbols[best_i:best_i + 2] = [symbols[best_i] + symbols[best_i + 1]]
    return symbols


def is_reachable(piece: str, scores: dict[str, float]) -> bool:
    """BPE builds `piece` from its characters, and every character is in the vocabulary."""
    if len(piece) == 1:
        return True
    return all(c in scores for c in piece) and bpe_split(piece, scores) == [piece]


def intermediates_for(piece: str, scores: dict[str, float], score_of_next) -> list[str] | None:
    """The pieces to add before `piece` so that BPE can build it, or None if no short plan works.

    Each round takes the symbols BPE gets stuck on and adds the concatenations of disjoint neighbouring
    pairs, scored above `piece` and below everything already present, so the existing merges still
    happen first and the new ones then apply; each round halves the symbol count.
    `score_of_next()` hands out the next (lower) score; the caller commits the returned pieces in order.
    """
    trial = dict(scores)
    added: list[str] = []
    for c in dict.fromkeys(piece):  # missing characters first (see the module docstring)
        if c not in trial:
            trial[c] = score_of_next()
            added.append(c)
    for _ in range(8):
        symbols = bpe_split(piece, trial)
        if len(symbols) == 1:
            return added
        for i in range(0, len(symbols) - 1, 2):
            pair = symbols[i] + symbols[i + 1]
            if pair == piece:
                continue
            if pair not in trial:
                trial[pair] = score_of_next()
                added.append(pair)
        trial[piece] = score_of_next()
        if is_reachable(piece, trial):
            return added
        del trial[piece]
    return None
