"""Where two JSON texts differ, and whether the change is confined to one number.

Owns the textual shortcut the tree walk may take: when two documents are the
same text except inside one run of number characters, and that run holds the
same kind of number on both sides (two integers, or two numbers with a
fraction or exponent), every other value is the same text on both sides. Plain
``==`` then cannot equate values of different types (``True`` with ``1``, ``1``
with ``1.0``), so the walk may skip its type-strict re-check. The run may also
sit inside a string; strings never equal numbers, so the shortcut still holds.
Pure code.
"""

from __future__ import annotations

__all__ = ["common_prefix", "common_suffix", "same_kind_number_change"]

_NUMBER_CHARS = frozenset(b"0123456789+-.eE")
_FRACTION_CHARS = frozenset(b".eE")
# Longer runs (digits inside a long string) are not worth walking byte by byte.
_MAX_RUN = 64
_FIRST_STEP = 1024


def _matching(a: bytes, b: bytes, limit: int, from_end: bool) -> int:
    """How many bytes (at most ``limit``) match from the start, or from the end.

    Gallops in doubling chunks, then bisects the chunk that differs; every
    step compares only bytes not yet known to match, so the cost is linear in
    the answer and each compare runs at memcmp speed.
    """
    size_a, size_b = len(a), len(b)

    def same(start: int, stop: int) -> bool:
        if from_end:
            return a[size_a - stop : size_a - start] == b[size_b - stop : size_b - start]
        return a[start:stop] == b[start:stop]

    done, step = 0, _FIRST_STEP
    while True:
        if done >= limit:
            return limit
        stop = min(done + step, limit)
        if not same(done, stop):
            break
        done, step = stop, step * 2
    low, high = done, stop - 1
    while low < high:
        middle = (low + high + 1) // 2
        if same(low, middle):
            low = middle
        else:
            high = middle - 1
    return low


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix."""
    return _matching(a, b, min(len(a), len(b)), from_end=False)


def common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the longest common suffix, at most ``limit``."""
    return _matching(a, b, min(len(a), len(b), limit), from_end=True)


def same_kind_number_change(a: bytes, b: bytes) -> bool:
    """True when ``a`` and ``b`` differ only inside one run of number characters of one kind.

    False for equal texts too: there is nothing to shortcut then.
    """
    prefix = common_prefix(a, b)
    if prefix == len(a) == len(b):
        return False
    suffix = common_suffix(a, b, min(len(a), len(b)) - prefix)
    # Widen the differing window to the whole run on each side; the prefix and
    # the suffix are shared, so the widening is the same on both sides.
    start, floor = prefix, max(0, prefix - _MAX_RUN)
    while start > floor and a[start - 1] in _NUMBER_CHARS:
        start -= 1
    end_a, end_b = len(a) - suffix, len(b) - suffix
    ceiling = min(len(a), end_a + _MAX_RUN)
    while end_a < ceiling and a[end_a] in _NUMBER_CHARS:
        end_a += 1
        end_b += 1
    run_a, run_b = a[start:end_a], b[start:end_b]
    if not 0 < len(run_a) < _MAX_RUN or not 0 < len(run_b) < _MAX_RUN:
        return False
    if not (_NUMBER_CHARS.issuperset(run_a) and _NUMBER_CHARS.issuperset(run_b)):
        return False
    return _FRACTION_CHARS.isdisjoint(run_a) == _FRACTION_CHARS.isdisjoint(run_b)
