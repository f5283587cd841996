"""memo.py: bounded memos, by the key's identity or by its value."""

from __future__ import annotations

from shadowproxy.memo import ByIdentity, ByValue


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


class TestByValue:
    def test_an_equal_key_finds_what_was_kept(self) -> None:
        memo: ByValue[bytes, str] = ByValue(8)
        assert memo.get(b"head") is None
        assert memo.keep(b"head", "parsed") == "parsed"
        assert memo.get(b"".join((b"he", b"ad"))) == "parsed"

    def test_bounded_it_starts_over_when_full(self) -> None:
        memo: ByValue[int, int] = ByValue(3)
        for n in range(4):
            memo.keep(n, n)
            assert len(memo) <= 3
        assert len(memo) == 1
        assert memo.get(0) is None and memo.get(3) == 3
