"""Continued BPE over a byte-level base: new merges learned on top of the base's own segmentation.

A byte-level BPE applies merges by rank inside each pre-token. Merges appended after the base's apply only once no
base merge applies, so on any text the base segmentation is reached first and the new merges then act on base
tokens. Learning them the same way (base pre-tokenizer and base merges first, then BPE over the base tokens of
domain text) makes every new token reachable by construction, as long as each new merge makes a token that did
not exist before: a merge into an existing token could re-enable an earlier merge out of the order the
training assumed, so such pairs are skipped (`skipped_in_base`, `skipped_duplicate`). A pre-tokenizer regex is not
closed under substrings: Tekken's takes "甲Ａ联赛" as one pre-token but "甲Ａ" alone as two, so a token "甲Ａ" learned
inside the first could never come from its own text; a merge whose bytes are whole characters that alone
pre-tokenize into several pieces is skipped too (`skipped_not_one_pretoken`).

`Growth` holds the new merges (merge k makes id `base.size + k`) and segments id sequences with them; `learn` is
an incremental BPE trainer over word types with pair counts (a pair -> count table, a pair -> words index and a
lazy max-heap; ties go to the smallest pair of ids, so runs are deterministic); `plan_word` turns one word-list
candidate into the merges that build it from its segmentation. A merge is only allowed when its bytes pass
`research.tokenizer.script.bytes_in_script` and `tokenizer.max_piece_chars`.
"""

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from research.tokenizer.script import bytes_in_script

STRIDE = 1 << 24
"""Pair key = left * STRIDE + right (ids stay far below 2**24)."""
BATCH = 2000
"""Lines per `encode_batch` call when segmenting text."""


_CONTINUATION = bytes(range(0x80, 0xC0))


def char_count(b: bytes) -> int:
    """Characters a token's bytes touch: complete ones, a partial one at either end counting as one."""
    return len(b.translate(None, _CONTINUATION)) + (1 if b and 0x80 <= b[0] <= 0xBF else 0)


def merge_pair(syms: list[int], a: int, b: int, c: int) -> list[int]:
    """Every non-overlapping (a, b) in `syms`, left to right, replaced by c (what BPE does with one merge)."""
    out, i, n = [], 0, len(syms)
    while i < n:
        if i + 1 < n and syms[i] == a and syms[i + 1] == b:
            out.append(c)
            i += 2
        else:
            out.append(syms[i])
            i += 1
    return out


@dataclass
class Growth:
    """The new merges of a byte-level expansion, in rank order, and what the filters allow."""
    base_size: int
    token_bytes: list[bytes | None]
    """id -> bytes, base then new (None for added tokens, which never merge)."""
    existing: set[bytes]
    """The bytes of every token, base and new: a merge must make bytes not in it."""
    base_bytes: set[bytes]
    script: str
    max_chars: int
    alone: Callable[[str], bool] | None = None
    """Whether a text is one pre-token by itself (and unchanged by the normaliser): a new token made of whole
    characters must be, or encoding its own text could not give it (module docstring)."""
    merges: list[tuple[int, int]] = field(default_factory=list)
    rank: dict[int, int] = field(default_factory=dict)
    """pair key -> its merge's rank."""
    _static: dict[int, str | None] = field(default_factory=dict)
    _cache_below: int = STRIDE
    """Only pairs of ids below this are cached (a plan that may be rolled back frees ids above it)."""

    @classmethod
    def start(cls, token_bytes: list[bytes | None], script: str, max_chars: int,
              alone: Callable[[str], bool] | None = None) -> "Growth":
        known = {b for b in token_bytes if b is not None}
        return cls(len(token_bytes), list(token_bytes), set(known), known, script, max_chars, alone)

    @property
    def new_ids(self) -> range:
        return range(self.base_size, self.base_size + len(self.merges))

    def static_reason(self, key: int) -> str | None:
        """Why pair `key` can never be a merge (script, length, an added token), or None; cached."""
        if key in self._static:
            return self._static[key]
        a, b = divmod(key, STRIDE)
        left, right = self.token_bytes[a], self.token_bytes[b]
        if left is None or right is None:
            reason = "special"
        elif not bytes_in_script(left + right, self.script):
            reason = "script"
        elif char_count(left + right) > self.max_chars:
            reason = "too_long"
        else:
            reason = None
        if a < self._cache_below and b < self._cache_below:
            self._static[key] = reason
        return reason

    def exists_reason(self, a: int, b: int) -> str | None:
        """skipped_in_base / skipped_duplicate when the merge would make a token that already exists;
        skipped_not_one_pretoken when it is whole characters that alone pre-tokenize into several pieces."""
        made = self.token_bytes[a] + self.token_bytes[b]
        if made in self.existing:
            return "skipped_in_base" if made in self.base_bytes else "skipped_duplicate"
        if self.alone is not None:
            try:
                text = made.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if not self.alone(text):
                return "skipped_not_one_pretoken"
        return None

    def add(self, a: int, b: int) -> int:
        """Append the merge (a, b); return the new token's id."""
        made = self.token_bytes[a] + self.token_bytes[b]
        self.rank[a * STRIDE + b] = len(self.merges)
        self.merges.append((a, b))
        self.token_bytes.append(made)
        self.existing.add(made)
        return len(self.token_bytes) - 1

    def truncate(self, n: int) -> None:
        """Drop the merges after the first n (a plan that did not work out)."""
        while len(self.merges) > n:
            a, b = self.merges.pop()
            del self.rank[a * STRIDE + b]
            self.existing.discard(self.token_bytes.pop())

    def segment(self, ids: Iterable[int]) -> list[int]:
        """Apply the new merges, lowest rank first, to base ids (a base segmentation of one pre-token)."""
        syms = list(ids)
        while len(syms) > 1:
            keys = (x * STRIDE + y for x, y in zip(syms, syms[1:], strict=False))
            best = min((r for r in map(self.rank.get, keys) if r is not None), default=None)
            if best is None:
                break
            a, b = self.merges[best]
            syms = merge_pair(syms, a, b, self.base_size + best)
        return syms


def base_words(tokenizer, lines: Iterable[str], added: set[int]) -> Counter:
    """Word types of the text as the base segments it: pre-token -> base ids, counted (pre-tokens of one token
    and those holding an added token are left out: no merge can apply to them)."""
    words: Counter = Counter()
    it = iter(lines)
    while batch := list(itertools.islice(it, BATCH)):
        for enc in tokenizer.encode_batch(batch, add_special_tokens=False):
            ids = enc.ids
            for _, group in itertools.groupby(range(len(ids)), key=enc.word_ids.__getitem__):
                word = tuple(ids[i] for i in group)
                if len(word) > 1 and not added.intersection(word):
                    words[word] += 1
    return words


def learn(growth: Growth, words: Counter, limit: int, min_count: int, bar=None) -> Counter:
    """Learn up to `limit` new merges over `words` (segmented with the merges so far); return the counts
    (offered: pairs taken from the heap; added; skipped_in_base / skipped_duplicate; distinct pairs the filters
    exclude as pairs_skipped_<why>). Stops early when the best allowed pair occurs fewer than `min_count` times."""
    counts: Counter = Counter()
    seqs, freqs, pairs, where = _index(growth, words, counts)
    heap = [(-c, k) for k, c in pairs.items()]
    heapq.heapify(heap)
    while counts["added"] < limit and heap:
        neg, key = heapq.heappop(heap)
        c = pairs.get(key, 0)
        if c != -neg:
            if c > 0:
                heapq.heappush(heap, (-c, key))
            continue
        if c < min_count:
            counts["stopped_below_min_pair_count"] = 1
            break
        a, b = divmod(key, STRIDE)
        counts["offered"] += 1
        reason = growth.exists_reason(a, b)
        del pairs[key]
        if reason:
            counts[reason] += 1
            growth._static[key] = reason
            continue
        new = growth.add(a, b)
        counts["added"] += 1
        if bar is not None:
            bar.update()
        for q in _apply(growth, key, new, seqs, freqs, pairs, where):
            heapq.heappush(heap, (-pairs[q], q))
    return counts


def _index(growth: Growth, words: Counter, counts: Counter):
    """(word symbol lists, their counts, pair key -> count, pair key -> word indices) over the allowed pairs."""
    seqs, freqs = [], []
    pairs: dict[int, int] = {}
    where: dict[int, list[int]] = {}
    cache, missing = growth._static, object()
    for word, f in words.items():
        syms = growth.segment(word) if growth.merges else list(word)
        ok = []
        for x, y in zip(syms, syms[1:], strict=False):
            k = x * STRIDE + y
            reason = cache.get(k, missing)
            if reason is missing:
                reason = growth.static_reason(k)
                if reason is not None:
                    counts[f"pairs_skipped_{reason}"] += 1
            if reason is None:
                ok.append(k)
        if not ok:
            continue
        wi = len(seqs)
        seqs.append(syms)
        freqs.append(f)
        for k in ok:
            pairs[k] = pairs.get(k, 0) + f
            where.setdefault(k, []).append(wi)
    return seqs, freqs, pairs, where


def _merge_at(syms: list[int], a: int, b: int, c: int) -> tuple[list[int], list[int]]:
    """`merge_pair`, also returning the positions in `syms` where a merge happened."""
    out, at, i, n = [], [], 0, len(syms)
    while i < n:
        if i + 1 < n and syms[i] == a and syms[i + 1] == b:
            at.append(i)
            out.append(c)
            i += 2
        else:
            out.append(syms[i])
            i += 1
    return out, at


def _apply(growth: Growth, key: int, new: int, seqs, freqs, pairs, where) -> set[int]:
    """Merge pair `key` into token `new` in every word holding it; update the pair counts and index. Only the pairs
    beside each merge change: those it breaks lose the word's count, those it makes gain it. Return the pairs whose
    count went up (they go back on the heap)."""
    a, b = divmod(key, STRIDE)
    up: set[int] = set()
    cache = growth._static
    for wi in dict.fromkeys(where.pop(key, ())):
        old = seqs[wi]
        merged, at = _merge_at(old, a, b, new)
        if not at:
            continue  # a stale entry: the pair left this word through an earlier merge
        f = freqs[wi]
        last = len(old) - 1
        for j in {j for i in at for j in (i - 1, i + 1) if 0 <= j < last}:
            q = old[j] * STRIDE + old[j + 1]
            if q in pairs:
                pairs[q] -= f
        last = len(merged) - 1
        for j in {j for k, i in enumerate(at) for j in (i - k - 1, i - k) if 0 <= j < last}:
            q = merged[j] * STRIDE + merged[j + 1]
            reason = cache[q] if q in cache else growth.static_reason(q)
            if reason is None:
                pairs[q] = pairs.get(q, 0) + f
                where.setdefault(q, []).append(wi)
                up.add(q)
        seqs[wi] = merged
    return up


def plan_word(growth: Growth, ids: list[int], room: int) -> tuple[str | None, int]:
    """Add the merges that build one candidate word from its base ids (one pre-token), in rounds of disjoint
    neighbouring pairs (each round's merges rank below everything before them); (reason it was skipped or None,
    merges added). A plan that fails or needs more than `room` merges is rolled back."""
    syms = growth.segment(ids)
    if len(syms) == 1:
        return ("skipped_in_base" if syms[0] < growth.base_size else "skipped_duplicate"), 0
    mark = len(growth.merges)
    growth._cache_below = growth.base_size + mark
    try:
        return _plan_rounds(growth, ids, syms, mark, room)
    finally:
        growth._cache_below = STRIDE


def _plan_rounds(growth: Growth, ids: list[int], syms: list[int], mark: int, room: int) -> tuple[str | None, int]:
    while len(syms) > 1:
        planned: set[int] = set()
        i = 0
        while i + 1 < len(syms):
            a, b = syms[i], syms[i + 1]
            key = a * STRIDE + b
            if key in planned:
                i += 2
            elif growth.static_reason(key) is None and growth.exists_reason(a, b) is None:
                growth.add(a, b)
                planned.add(key)
                i += 2
            else:
                i += 1
        if not planned or len(growth.merges) - mark > room:
            why = "skipped_no_room" if planned else "skipped_unreachable"
            growth.truncate(mark)
            return why, 0
        syms = growth.segment(ids)
    return None, len(growth.merges) - mark
