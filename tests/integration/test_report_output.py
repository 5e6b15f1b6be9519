"""``lineside report`` and ``lineside alerts`` on a busy shift: a store written through the
real store from an 8-hour shift played through the real rules engine (2,400 packs, over 500
alert transitions, the checkweigher's counter skipping packs; tests/support/shift_store.py).

The text is summary first and fits a screen; ``--json`` is one document whose keys are those
docs/command-output.md lists; missed packs and buffered records are counted.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runs import lineside
from tests.support.command_docs import documented_keys
from tests.support.configs import minimal_config_text
from tests.support.shift_store import ShiftFacts, write_shift

SCREEN_LINES = 60


@pytest.fixture(scope="module")
def shift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ShiftFacts]:
    folder = tmp_path_factory.mktemp("shift")
    facts = asyncio.run(write_shift(folder / "gw.db"))
    config = folder / "gw.toml"
    config.write_text(minimal_config_text(folder / "gw.db"))
    return config, facts


def run_json(*args: str) -> dict[str, Any]:
    done = lineside(*args, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert isinstance(document, dict)
    return document


def test_report_json_has_the_documented_keys_and_counts_missed_and_buffered(
    shift: tuple[Path, ShiftFacts],
) -> None:
    config, facts = shift
    document = run_json("report", facts.run_number, "-c", str(config))
    assert set(document) == documented_keys("The report document")
    assert document["version"] == 1
    assert document["run"]["run_number"] == facts.run_number
    assert document["figures"]["packs"] == facts.packs
    assert document["figures"]["emark_batches"] == len(document["emark_batches"]) > 0
    [product] = document["products"]
    assert product["plu"] == "41240"
    assert product["packs"] == facts.packs
    # The counter's gaps: packs the checkweigher counted that never reached the gateway.
    missed = {"missed_packs": facts.missed_packs, "shed_packs": 0, "rejected_inputs": 0}
    assert document["missed"] == missed
    # No uplink ever ran: every pack, temperature and label of the run is still buffered.
    assert document["buffered_records"] >= facts.packs
    alerts = document["alerts"]
    assert alerts["transitions"] == facts.alert_transitions
    assert sum(r["transitions"] for r in alerts["by_rule"].values()) == facts.alert_transitions
    assert alerts["by_rule"]["label_gap"]["active"] > 0
    assert all(a["active"] or not a["acknowledged"] for a in alerts["standing"])
    assert "transition_list" not in alerts
    full = run_json("report", facts.run_number, "-c", str(config), "--all")
    assert len(full["alerts"]["transition_list"]) == facts.alert_transitions


def test_report_text_is_summary_first_and_fits_a_screen(shift: tuple[Path, ShiftFacts]) -> None:
    config, facts = shift
    assert facts.alert_transitions > 500, "a busy shift"
    done = lineside("report", facts.run_number, "-c", str(config))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) < SCREEN_LINES, done.stdout
    assert lines[0].startswith(f"Run {facts.run_number}")
    assert f"packs {facts.packs}" in lines[1]
    order = [
        next(i for i, line in enumerate(lines) if line.startswith(head))
        for head in ("Alerts:", "Missed:", "Buffered:")
    ]
    assert order == sorted(order), done.stdout
    missed = lines[order[1]]
    assert f"{facts.missed_packs} packs counted by the checkweigher but not received" in missed
    # The per-rule summary stands for the transitions, which are not listed one by one.
    assert f"({facts.alert_transitions} transitions)" in done.stdout
    assert "alarm load on line L1:" in done.stdout
    assert sum("label number" in line for line in lines) <= 10
    everything = lineside("report", facts.run_number, "-c", str(config), "--all")
    assert len(everything.stdout.splitlines()) > facts.alert_transitions


def test_alerts_text_fits_a_screen_and_json_counts_them_all(
    shift: tuple[Path, ShiftFacts],
) -> None:
    config, _facts = shift
    # No gateway runs: the alerts are read from its store.
    document = run_json("alerts", "-c", str(config))
    assert set(document) == documented_keys("The alerts document")
    assert document["source"] == "store"
    # More standing alerts than one listing carries: all counted, the listing says so.
    assert document["total"] > len(document["alerts"]) == 300
    assert document["more"] is True
    assert document["active"] == document["by_rule"]["label_gap"]["active"] > 0
    assert (
        sum(c["active"] + c["cleared"] for c in document["by_rule"].values()) == (document["total"])
    )
    done = lineside("alerts", "-c", str(config))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) < SCREEN_LINES, done.stdout
    assert lines[0] == (
        f"{document['active']} active alert(s); "
        f"{document['total'] - document['active']} cleared awaiting acknowledgement"
    )
    every = lineside("alerts", "-c", str(config), "--all")
    refs = {a["ref"] for a in document["alerts"]}
    assert all(ref in every.stdout for ref in refs)


def _environment(**overrides: str) -> dict[str, str]:
    """This environment without the locale and encoding settings, then ``overrides``."""
    unset = ("LANG", "LANGUAGE", "PYTHONUTF8", "PYTHONIOENCODING", "PYTHONCOERCECLOCALE")
    env = {k: v for k, v in os.environ.items() if k not in unset and not k.startswith("LC_")}
    return {**env, **overrides}


@pytest.mark.parametrize("command", [("report", "R"), ("alerts",)])
def test_json_is_utf8_under_the_c_locale(
    shift: tuple[Path, ShiftFacts], command: tuple[str, ...]
) -> None:
    config, facts = shift
    args = [facts.run_number if a == "R" else a for a in command]
    done = lineside(*args, "-c", str(config), "--json", env=_environment(LC_ALL="C", LANG="C"))
    assert done.returncode == 0, done.stderr
    assert "℮" in done.stdout
    assert "\\u212e" not in done.stdout
    json.loads(done.stdout)


def test_a_stdout_that_cannot_write_the_e_mark_escapes_it(
    shift: tuple[Path, ShiftFacts],
) -> None:
    config, facts = shift
    ascii_out = _environment(PYTHONIOENCODING="ascii")
    text = lineside("report", facts.run_number, "-c", str(config), env=ascii_out)
    assert text.returncode == 0, text.stderr
    assert "every \\u212e batch" in text.stdout
    document = lineside("report", facts.run_number, "-c", str(config), "--json", env=ascii_out)
    assert document.returncode == 0, document.stderr
    assert "℮" in json.dumps(json.loads(document.stdout), ensure_ascii=False)
