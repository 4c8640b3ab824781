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


class Trial:
    """`scores` plus a few trial entries, without copying `scores` (a copy per candidate made the expansion
    quadratic in the vocabulary size). Offers what `bpe_split` and `is_reachable` use: `get` and `in`."""

    __slots__ = ("base", "extra")

    def __init__(self, base: dict[str, float]):
        self.base, self.extra = base, {}

    def get(self, key: str, default=None):
        value = self.extra.get(key)
        return self.base.get(key, default) if value is None else value

    def __contains__(self, key: str) -> bool:
        return key in self.extra or key in self.base

    def __setitem__(self, key: str, value: float) -> None:
        self.extra[key] = value

    def __delitem__(self, key: str) -> None:
        del self.extra[key]


def max_intermediates(n: int) -> int:
    """The most pieces `intermediates_for` can return for a piece of n characters: its missing characters (at
    most n) and, over at most 8 rounds, at most n // 2 pairs a round, each a distinct inner substring."""
    return n + min(8 * (n // 2), max(n * (n - 1) // 2 - 1, 0))


def intermediates_for(piece: str, scores: dict[str, float], score_of_next) -> list[str] | None:
    """The pieces to add before `piece` so that BPE can build it, or None if no short plan works.

    Each round takes the symbols BPE gets stuck on and adds the concatenations of disjoint neighbouring
    pairs, scored above `piece` and below everything already present, so the existing merges still
    happen first and the new ones then apply; each round halves the symbol count.
    `score_of_next()` hands out the next (lower) score; the caller commits the returned pieces in order.
    """
    trial = Trial(scores)
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
