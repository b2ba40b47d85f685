"""Which large-model blocks receive a Scale-Adapter, and from which small-model block each one reads (Scale-Adapter
paper, Sec. 4.2 and Appendix A: the first and last blocks of two scales are the most similar, so adapters sit
denser near both ends and evenly spaced in the middle; the paper pairs Wan 14B blocks [0, 4, ..., 36] with
1.3B blocks [0, 2, 5, ..., 24])."""

from __future__ import annotations

from ...errors import CinetuneError

STRATEGIES = ("ends", "even", "first", "last")


def _spread(lo: int, hi: int, n: int) -> list[int]:
    """n indices evenly spread over [lo, hi] (inclusive), as distinct as the range allows."""
    if n <= 0 or hi < lo:
        return []
    if n == 1:
        return [(lo + hi) // 2]
    return sorted({round(lo + i * (hi - lo) / (n - 1)) for i in range(n)})


def large_blocks(num_large: int, count: int, strategy: str = "ends") -> list[int]:
    """`count` distinct large-block indices chosen by `strategy`:
    - ends: a quarter of the count (at least one) at each end, the rest evenly spaced in the middle;
    - even: evenly spaced from the first to the last block;
    - first / last: the first / last `count` blocks."""
    if strategy not in STRATEGIES:
        raise CinetuneError(f"unknown pairing strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    if not 1 <= count <= num_large:
        raise CinetuneError(f"adapter count must be in 1..{num_large} (the large model's blocks), got {count}")
    if strategy == "first":
        return list(range(count))
    if strategy == "last":
        return list(range(num_large - count, num_large))
    if strategy == "even" or count <= 2:
        return _spread(0, num_large - 1, count) if count > 1 else [0]
    per_end = max(1, count // 4)
    head, tail = list(range(per_end)), list(range(num_large - per_end, num_large))
    middle_n = count - 2 * per_end
    # the middle ones evenly inside the gap, away from the ends' runs
    gap_lo, gap_hi = per_end, num_large - per_end - 1
    middle = _spread(gap_lo, gap_hi, middle_n + 2)[1:-1] if middle_n else []
    if len(middle) < middle_n:  # the gap is too narrow to leave a margin: fill it
        middle = _spread(gap_lo, gap_hi, middle_n)
    chosen = sorted(set(head + middle + tail))
    for i in range(num_large):  # rounding collisions: top up with unused blocks nearest the middle
        if len(chosen) >= count:
            break
        if i not in chosen:
            chosen.append(i)
    return sorted(chosen)


def pair_blocks(num_large: int, num_small: int, count: int | None = None, strategy: str = "ends",
                large: list[int] | None = None, small: list[int] | None = None) -> list[tuple[int, int]]:
    """(large block, small block) pairs. Explicit `large` (and optionally `small`) lists win over the strategy;
    a small block is otherwise the one at the same relative depth (round(l * (S-1) / (L-1)))."""
    if large is None:
        large = large_blocks(num_large, count if count is not None else max(1, num_large // 3 + 1), strategy)
    bad = [i for i in large if not 0 <= i < num_large]
    if bad or len(set(large)) != len(large):
        raise CinetuneError(f"large blocks must be distinct indices in 0..{num_large - 1}, got {large}")
    if small is None:
        small = [round(i * (num_small - 1) / max(1, num_large - 1)) for i in large]
    if len(small) != len(large) or any(not 0 <= j < num_small for j in small):
        raise CinetuneError(f"small blocks must be {len(large)} indices in 0..{num_small - 1}, got {small}")
    return list(zip(large, small))
