"""``lineside reconcile``: the comparison with the warehouse, as text or as one JSON document.

Summary first: whether every committed record is in the warehouse or still buffered, how
many records are still buffered (in the outbox, waiting for the warehouse's acknowledgement)
in total and per stream, then each bucket that differs. The JSON document's keys are in
docs/command-output.md.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sync.reconcile import Reconciliation

RECONCILE_DOCUMENT_VERSION = 1


def buffered_per_stream(result: Reconciliation) -> dict[str, int]:
    """Records still in the outbox per stream (streams with none left out)."""
    per_stream: Counter[str] = Counter()
    for (stream, _run, _hour), count in result.buffered.items():
        per_stream[stream] += count
    return {stream: n for stream, n in sorted(per_stream.items()) if n}


def reconcile_document(result: Reconciliation, gateway_id: str) -> dict[str, Any]:
    """The ``--json`` document (version 1)."""
    per_stream = buffered_per_stream(result)
    return {
        "version": RECONCILE_DOCUMENT_VERSION,
        "gateway": gateway_id,
        "consistent": not result.differences,
        "committed_records": result.committed,
        "buffered": {"total": sum(per_stream.values()), "per_stream": per_stream},
        "differences": [
            {
                "stream": d.key[0],
                "run_number": d.key[1],
                "hour": d.key[2],
                "gateway_count": d.gateway_count,
                "warehouse_count": d.warehouse_count,
                "still_buffered": d.still_buffered,
                "missing": d.missing,
            }
            for d in result.differences
        ],
    }


def format_reconcile(result: Reconciliation, gateway_id: str) -> str:
    """The text layout: the verdict, the buffered counts, then each differing bucket."""
    per_stream = buffered_per_stream(result)
    total = sum(per_stream.values())
    if result.differences:
        verdict = f"gateway {gateway_id}: {len(result.differences)} bucket(s) differ"
    else:
        verdict = f"gateway {gateway_id}: every committed record is in the warehouse or buffered"
    streams = ", ".join(f"{stream} {n}" for stream, n in per_stream.items())
    out = [
        verdict,
        f"  committed {result.committed} record(s); still buffered {total}"
        + (f" ({streams})" if streams else ""),
    ]
    if result.differences:
        out.append("")
    for d in result.differences:
        stream, run, hour = d.key
        out.append(
            f"{stream:<16} run {run or '-':<16} {hour}h  gateway {d.gateway_count:>7}  "
            f"warehouse {d.warehouse_count:>7}  still buffered {d.still_buffered:>6}"
        )
    return "\n".join(out)
