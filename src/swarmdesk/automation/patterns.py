"""Regular expressions that admins write, matched safely.

RE2 (Google's engine, through ``google-re2``) matches in time linear in the text, whatever the
pattern: it has no backtracking, so ``(a+)+$`` cannot blow up the way it does in Python's ``re``.
That is a guarantee by construction, not a timeout: nothing blocks the event loop for longer than
one linear scan of a bounded text, and there is no thread to kill. The price is RE2's syntax (no
backreferences, no lookaround), which is checked when a rule is saved. Patterns are short (500
characters), their compiled program is capped in memory, and the text is capped in length.
"""

from __future__ import annotations

import re2

MAX_PATTERN_MEMORY = 2 << 20  # bytes for RE2's compiled program; a pattern needing more is refused
MAX_TEXT_CHARS = 50_000  # a message's maximum; longer text is matched on its start


class PatternError(ValueError):
    pass


def _options(case_sensitive: bool) -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # the error goes back to the admin, not to stderr
    options.max_mem = MAX_PATTERN_MEMORY
    options.case_sensitive = case_sensitive
    return options


class SafePattern:
    __slots__ = ("pattern", "_regex")

    def __init__(self, pattern: str, *, case_sensitive: bool) -> None:
        self.pattern = pattern
        try:
            self._regex = re2.compile(pattern, options=_options(case_sensitive))
        except re2.error as exc:
            detail = exc.args[0] if exc.args else "invalid pattern"
            raise PatternError(detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)) from None

    def search(self, text: str) -> bool:
        return self._regex.search(text[:MAX_TEXT_CHARS]) is not None
