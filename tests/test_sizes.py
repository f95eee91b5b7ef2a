"""Sizes as people read them."""

from __future__ import annotations

from elliptio._sizes import human_size


def test_human_size() -> None:
    cases = {0: "0 B", 999: "999 B", 1000: "1 kB", 1500: "1.5 kB", 999_600: "1 MB"}
    cases |= {200_000_000: "200 MB", 12_345_678: "12.3 MB", 10**18: "1000 PB"}
    assert {n: human_size(n) for n in cases} == cases
