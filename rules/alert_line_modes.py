"""Each line's mode, and which rules a mode other than production suppresses.

While a line is in changeover or washdown its suppressible rules do not raise; rules whose
id starts with a ``never_suppress`` prefix (HACCP, cold store) always do, because CCP
monitoring never stops (:data:`rules.alert_model.DEFAULT_NEVER_SUPPRESS`).
"""

from __future__ import annotations

from collections.abc import Iterable

from rules.alert_model import LINE_MODES, LineMode

__all__ = ["LineModes"]


class LineModes:
    """The mode of every line (``production`` until told otherwise) and the suppression policy.

    Args:
        never_suppress: rule id prefixes that line modes never suppress.
        suppressible_rules: if given, only these rule ids are suppressible (still minus
            ``never_suppress``); None means every rule not excluded by prefix.
    """

    def __init__(
        self, never_suppress: Iterable[str], suppressible_rules: Iterable[str] | None
    ) -> None:
        self._never_suppress = tuple(never_suppress)
        self._suppressible = None if suppressible_rules is None else frozenset(suppressible_rules)
        self._modes: dict[str, LineMode] = {}

    def mode(self, line: str) -> LineMode:
        """The line's mode."""
        return self._modes.get(line, "production")

    def set(self, line: str, mode: str) -> LineMode:
        """Put ``line`` into ``mode``; the mode it was in.

        Raises:
            ValueError: an unknown mode.
        """
        if mode not in LINE_MODES:
            msg = f"line mode must be one of {', '.join(LINE_MODES)}, not {mode!r}"
            raise ValueError(msg)
        previous = self.mode(line)
        self._modes[line] = next(m for m in LINE_MODES if m == mode)
        return previous

    def is_suppressible(self, rule: str) -> bool:
        """Whether line modes suppress this rule."""
        if rule.startswith(self._never_suppress):
            return False
        return self._suppressible is None or rule in self._suppressible

    def suppresses(self, rule: str, line: str | None) -> bool:
        """Whether a finding of ``rule`` on ``line`` is suppressed now."""
        if line is None or self.mode(line) == "production":
            return False
        return self.is_suppressible(rule)
