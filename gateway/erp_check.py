"""``lineside erp-check URL``: fetch one page from an ERP endpoint and say what is wrong with it.

The page is fetched by the gateway's own HTTP source (:class:`HttpErpSource`: the same
client, TLS checks, status handling and size bound as a real poll), then checked against the
contract (docs/erp-contract.md) by :func:`adapters.erp.contract.check_page`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import SecretStr, ValidationError

from adapters.erp.contract import Finding, check_page
from adapters.erp.http_source import HttpErpSource
from gateway.config import HttpErp
from gateway.core.errors import ErpError

__all__ = ["EXIT_NOT_CONFORMING", "EXIT_UNREADABLE", "ErpCheckResult", "check_erp", "run_erp_check"]

EXIT_CONFORMS: Final = 0
EXIT_NOT_CONFORMING: Final = 1
"""A page was read, and it breaks the contract."""
EXIT_UNREADABLE: Final = 4
"""No page could be read: unreachable, refused, not JSON, too large, or a bad URL/token."""

MAX_CHECKED_RUNS: Final = 1000
"""Runs of one page checked against the contract. The request asks for ``page_size`` (500)
runs; a hostile page of a million tiny runs fits in ``max_response_bytes`` and would
otherwise cost minutes, gigabytes and millions of findings."""
MAX_SHOWN_FINDINGS: Final = 200
"""Findings printed as text; ``--json`` lists every one found in the checked runs."""


@dataclass(slots=True)
class ErpCheckResult:
    """What one check found."""

    url: str
    error: str | None = None
    """Why no page could be read; None when one was."""
    runs: int = 0
    checked_runs: int = 0
    """The runs checked: all of them, or the first :data:`MAX_CHECKED_RUNS`."""
    findings: list[Finding] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 conforms, 1 does not conform, 4 no page read."""
        if self.error is not None:
            return EXIT_UNREADABLE
        return EXIT_NOT_CONFORMING if self.findings else EXIT_CONFORMS

    def to_json(self) -> dict[str, object]:
        """The result for programs (``--json``)."""
        return {
            "url": self.url,
            "conforms": self.exit_code == EXIT_CONFORMS,
            "error": self.error,
            "runs": self.runs,
            "checked_runs": self.checked_runs,
            "findings": [
                {"path": f.path, "message": f.message, "severity": f.severity}
                for f in self.findings
            ],
        }

    def _unchecked(self) -> list[str]:
        if self.checked_runs >= self.runs:
            return []
        return [f"Only the first {self.checked_runs} of the {self.runs} runs were checked."]

    def format(self) -> str:
        """The result for people: a verdict line, then one line per finding."""
        if self.error is not None:
            return f"{self.url}: no page read: {self.error}"
        if not self.findings:
            verdict = f"{self.url}: the first page ({self.runs} runs) conforms to the ERP contract"
            return "\n".join([verdict, *self._unchecked()])
        rejected = sum(f.severity == "rejected" for f in self.findings)
        lines = [
            f"{self.url}: the first page ({self.runs} runs) does not conform: "
            f"{len(self.findings)} problem(s), {rejected} of which the gateway would reject"
        ]
        lines += [f"  {f}" for f in self.findings[:MAX_SHOWN_FINDINGS]]
        if len(self.findings) > MAX_SHOWN_FINDINGS:
            more = len(self.findings) - MAX_SHOWN_FINDINGS
            lines.append(f"  ... and {more} more (--json lists them all)")
        lines += self._unchecked()
        lines.append("The contract: docs/erp-contract.md")
        return "\n".join(lines)


async def check_erp(
    url: str,
    *,
    token: str | None = None,
    timezone: str = "Europe/London",
    ca_file: Path | None = None,
    timeout_s: float = 60.0,
) -> ErpCheckResult:
    """Fetch the first page of ``url`` (a full reload's request) and check it, giving up
    after ``timeout_s`` (a server that drips its answer is cut off there)."""
    result = ErpCheckResult(url=url)
    try:
        config = HttpErp(
            kind="http",
            url=url,
            token=SecretStr(token) if token is not None else None,
            timezone=timezone,
            ca_file=ca_file,
            retries=0,
            total_timeout_s=timeout_s,
        )
    except ValidationError as exc:
        # pydantic's "Value error, " prefix says nothing to someone who typed a URL.
        result.error = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        return result
    try:
        source = HttpErpSource(config)
    except ErpError as exc:
        result.error = str(exc)
        return result
    except (OSError, ssl.SSLError) as exc:
        # Only the CA bundle is read here: a missing or unreadable file, or not PEM.
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        result.error = f"cannot use CA file {ca_file}: {why}"
        return result
    try:
        body = await source.fetch_first_page()
    except ErpError as exc:
        result.error = str(exc)
        return result
    finally:
        await source.close()
    body = _bounded(body, result)
    result.findings = check_page(body, tz=ZoneInfo(config.timezone))
    return result


def _bounded(body: object, result: ErpCheckResult) -> object:
    """The page with at most :data:`MAX_CHECKED_RUNS` runs; counts them into ``result``."""
    if isinstance(body, dict) and isinstance(body.get("runs"), list):
        result.runs = len(body["runs"])
        result.checked_runs = min(result.runs, MAX_CHECKED_RUNS)
        return {**body, "runs": body["runs"][:MAX_CHECKED_RUNS]}
    if isinstance(body, list):
        result.runs = len(body)
        result.checked_runs = min(result.runs, MAX_CHECKED_RUNS)
        return body[:MAX_CHECKED_RUNS]
    return body


def run_erp_check(
    url: str,
    *,
    token_file: Path | None,
    as_json: bool,
    timezone: str = "Europe/London",
    ca_file: Path | None = None,
    timeout_s: float = 60.0,
) -> tuple[str, int]:
    """The command: the text to print and the exit code."""
    token: str | None = None
    result: ErpCheckResult | None = None
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            why = f"cannot read token file {token_file}: {exc.strerror}"
            result = ErpCheckResult(url=url, error=why)
    if result is None:
        result = asyncio.run(
            check_erp(url, token=token, timezone=timezone, ca_file=ca_file, timeout_s=timeout_s)
        )
    # Everything in the result may come from the ERP (keys, values, a Location header):
    # ASCII-only JSON keeps C1 controls and bidi overrides escaped for the terminal too.
    text = json.dumps(result.to_json(), ensure_ascii=True) if as_json else result.format()
    return text, result.exit_code
