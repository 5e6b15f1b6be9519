"""Short references to alerts, for people: ``lineside alerts`` shows them, ``ack`` takes them.

An alert id is exact but long (``emark_mean:L1/261201-L1-02/41240/2026-12-01T21:34:36Z:…``).
Its reference is the start of the hex SHA-256 of the id: six characters, or more where two
alerts of the same list would otherwise share one. Derived from the id alone, it is the same
in the gateway, in ``lineside alerts`` (which reads the store) and after a restart, and
needs no state of its own. With a few hundred open alerts two share six hex digits about
once in a few hundred lists; they are then shown longer, and a reference that still names
two alerts is refused, never guessed.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Final

__all__ = ["REF_LENGTH", "alert_ref", "resolve_ref", "short_refs"]

REF_LENGTH: Final = 6


def _digest(alert_id: str) -> str:
    return hashlib.sha256(alert_id.encode("utf-8")).hexdigest()


def alert_ref(alert_id: str, length: int = REF_LENGTH) -> str:
    """The first ``length`` hex digits of the id's SHA-256."""
    return _digest(alert_id)[:length]


def _common(a: str, b: str) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


def short_refs(alert_ids: Iterable[str]) -> dict[str, str]:
    """A reference for each id, unique among them: :data:`REF_LENGTH` characters, longer
    only for ids whose first six collide (one more than the longest prefix it shares with
    another, found between neighbours in digest order)."""
    ordered = sorted((_digest(alert_id), alert_id) for alert_id in set(alert_ids))
    refs: dict[str, str] = {}
    for i, (digest, alert_id) in enumerate(ordered):
        shared = max(
            (_common(digest, ordered[j][0]) for j in (i - 1, i + 1) if 0 <= j < len(ordered)),
            default=0,
        )
        refs[alert_id] = digest[: max(REF_LENGTH, shared + 1)]
    return refs


def resolve_ref(text: str, alert_ids: Iterable[str]) -> str:
    """The id that ``text`` names among ``alert_ids``: the id itself, or a reference (the
    start of its digest, at least :data:`REF_LENGTH` characters, any case).

    Raises:
        KeyError: nothing matches.
        ValueError: the reference names more than one alert.
    """
    ids = list(alert_ids)
    if text in ids:
        return text
    wanted = text.strip().lower()
    if len(wanted) < REF_LENGTH or any(c not in "0123456789abcdef" for c in wanted):
        raise KeyError(text)
    matches = [alert_id for alert_id in ids if _digest(alert_id).startswith(wanted)]
    if not matches:
        raise KeyError(text)
    if len(matches) > 1:
        raise ValueError(
            f"reference {text!r} names {len(matches)} alerts ({', '.join(sorted(matches))}); "
            "give more of it or the alert id"
        )
    return matches[0]
