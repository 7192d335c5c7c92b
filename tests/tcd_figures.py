"""The figures the tests measure (parity errors, coverage, timings), printed once at the end of a run.

A test module keeps what it measured and registers a reporter that turns it into lines; ``conftest.py`` prints every
reporter's lines in pytest's terminal summary. A reporter returns no lines when its tests did not run (deselected or
skipped), so nothing here is a test and nothing here can pass or fail: the assertions stay in the tests themselves.
"""
from __future__ import annotations

from typing import Callable, Iterable

_REPORTERS: list[tuple[str, Callable[[], Iterable[str]]]] = []


def reporter(title: str):
    """Decorator: ``fn() -> lines`` is printed under ``title`` in the terminal summary when it returns any line."""
    def register(fn):
        _REPORTERS.append((title, fn))
        return fn
    return register


def sections() -> list[tuple[str, list[str]]]:
    """(title, lines) of every reporter that has something to say, in registration order."""
    out = []
    for title, fn in _REPORTERS:
        lines = [str(line) for line in fn()]
        if lines:
            out.append((title, lines))
    return out
