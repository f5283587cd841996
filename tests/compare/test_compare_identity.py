"""compare/identity.py: what was made from an object, kept by the object's identity."""

from __future__ import annotations

from shadowproxy.compare.identity import ByIdentity


class TestByIdentity:
    def test_made_once_per_object_and_again_for_an_equal_other(self) -> None:
        made: list[list[int]] = []

        def make(key: list[int]) -> int:
            made.append(key)
            return len(made)

        memo: ByIdentity[list[int], int] = ByIdentity(8)
        first, twin = [1], [1]
        assert [memo.get(first, make), memo.get(first, make), memo.get(twin, make)] == [1, 1, 2]
        assert made == [first, twin] and made[1] is twin

    def test_bounded_it_starts_over_when_full(self) -> None:
        memo: ByIdentity[object, int] = ByIdentity(3)
        keys = [object() for _ in range(4)]
        for n, key in enumerate(keys):
            memo.get(key, lambda _, n=n: n)
            assert len(memo) <= 3
        assert len(memo) == 1
        assert memo.get(keys[0], lambda _: 99) == 99
