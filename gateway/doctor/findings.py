"""What ``lineside doctor`` finds: one :class:`Finding` per check, and the :class:`Report`
they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class Finding:
    """The outcome of one check."""

    check: str
    status: Status
    message: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding, and the exit status they add up to."""

    findings: list[Finding]
    config_loaded: bool

    @property
    def exit_code(self) -> int:
        """0 all good (warnings allowed), 1 something failed, 3 the config does not load."""
        if not self.config_loaded:
            return 3
        return 1 if any(f.status == "fail" for f in self.findings) else 0

    def format(self) -> str:
        """The report as lines for a terminal."""
        lines = []
        # One column for the checks, two spaces at least after the longest ("device scanner1").
        width = max([14, *(len(f.check) + 1 for f in self.findings)])
        indent = " " * (7 + width)
        for finding in self.findings:
            label = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}[finding.status]
            first, *rest = finding.message.splitlines() or [""]
            lines.append(f"{label:<5} {finding.check:<{width}} {first}")
            lines.extend(f"{indent}{line}" for line in rest)
            if finding.fix:
                lines.append(f"{indent}fix: {finding.fix}")
        failed = sum(f.status == "fail" for f in self.findings)
        warned = sum(f.status == "warn" for f in self.findings)
        if failed or warned:
            lines.append(f"{failed} failed, {warned} warning(s): see the fixes above")
        else:
            lines.append("everything checked is fine")
        return "\n".join(lines)


__all__ = ["Finding", "Report", "Status"]
