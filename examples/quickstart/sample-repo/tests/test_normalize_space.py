"""Tests for normalize_space: the suite passes before any agent has run."""

from textkit import normalize_space


def test_runs_of_whitespace_become_one_space() -> None:
    assert normalize_space("a  b\t\nc") == "a b c"


def test_ends_are_trimmed() -> None:
    assert normalize_space("  padded  ") == "padded"
