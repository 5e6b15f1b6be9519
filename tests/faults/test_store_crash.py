"""SIGKILL a process while it writes batches, 20 times at random moments.

After each kill: the database opens, ``quick_check`` is ok, every batch is whole or absent
(no half-written batch), every batch the writer saw committed is there, and no sequence
number was ever reused for different content.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.support.crash_writer import BATCH
from tests.support.paths import REPO, repo_pythonpath

KILLS = 20


def test_sigkill_while_writing_batches_loses_and_tears_nothing(tmp_path: Path) -> None:
    db_path = tmp_path / "crash.db"
    rng = random.Random(20_261_122)
    seen: dict[int, tuple[int, int, int]] = {}  # seq -> (run, batch, i), across all runs
    env = {**os.environ, "PYTHONPATH": repo_pythonpath()}
    for run in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_writer", str(db_path), str(run)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "open"
        time.sleep(rng.uniform(0.01, 0.4))  # the random moment of the kill
        proc.send_signal(signal.SIGKILL)
        output, errors = proc.communicate(timeout=10)  # reads both pipes and closes them
        assert "Traceback" not in errors, f"the writer failed before the kill:\n{errors}"
        # Only whole lines count: the kill may land while a line is being written.
        complete = output.split("\n")[:-1]
        acknowledged = [tuple(map(int, line.split())) for line in complete]

        db = sqlite3.connect(db_path)
        try:
            assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
            rows = db.execute(
                "SELECT e.seq, e.detail, o.seq FROM device_events e "
                "LEFT JOIN outbox o ON o.seq = e.seq WHERE e.kind = 'batch'"
            ).fetchall()
        finally:
            db.close()
        batches: dict[tuple[int, int], list[int]] = {}
        for seq, detail_text, outbox_seq in rows:
            detail = json.loads(detail_text)
            content = (detail["run"], detail["batch"], detail["i"])
            assert outbox_seq == seq, "every record has its outbox row, in the same transaction"
            assert seen.setdefault(seq, content) == content, f"sequence {seq} reused"
            batches.setdefault(content[:2], []).append(seq)
        for key, seqs in batches.items():
            assert len(seqs) == BATCH, f"batch {key} is half-written: {len(seqs)} rows"
            assert seqs == list(range(min(seqs), min(seqs) + BATCH))
        for run_no, batch_no, first, last in acknowledged:
            assert sorted(batches[(run_no, batch_no)]) == list(range(first, last + 1)), (
                "an acknowledged batch is durable"
            )
    runs_with_data = {run for run, _batch, _i in seen.values()}
    assert len(runs_with_data) >= KILLS // 2, "the writer got batches in before most kills"
