"""A simulated day, end to end: two sites of two lines each, through real gateways, one real
mosquitto and one real ``lineside ingest`` into PostgreSQL, read back through the real read
API (``lineside warehouse serve``) and checked against each gateway's own figures.

Each site has its own simulators (tests/support/day_site.py: OPC UA checkweigher CW1 and
probes on L1 with the label scanner, the Modbus scale CW2 and transmitters on L2, the ERP)
and its own gateway (``lineside run``, config/demo.toml with a second line). The demo
scenario is played 30 times faster than life: underweight drift with packs below T2, a
short and a long probe excursion (a HACCP breach), a label gap, a device dropout. The
ERP's runs (fixed date, so nothing here depends on today's) span several products: the L1
run lists a 240 g and a 400 g product, the L2 run packs a catch-weight product, and both
running runs of both sites carry the batch code the labellers print.

Once one demo cycle is packed on every line the gateways are stopped cleanly, what is
left in their outboxes is delivered (acknowledged), and then:

* for every run of every gateway, the API's report is the document
  ``lineside report RUN --json`` gives on that gateway's own store (counts, mean,
  giveaway, ℮ batches and their verdicts, alerts, missed packs: all of it, exactly),
  and the API's summary row (℮ verdict, HACCP breaches and their duration, label gaps)
  is the one the gateway's own report gives;
* a trace by the shared batch code returns exactly the packs and labels the two
  gateways' stores hold for the runs that used it, and a trace by a label's serial
  exactly that label, with its pack, its run and its batch codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from central.api.jsonable import jsonable
from central.summary import run_summary
from gateway.report import build_report
from gateway.report_output import run_losses
from sync.ingest.auth import hash_token, write_tokens
from tests.support.day_processes import (
    CYCLE_PACKS,
    Gateway,
    Ingest,
    ReadApi,
    Simulators,
    ended,
)
from tests.support.day_processes import gateway_config as day_gateway_config
from tests.support.day_site import CATCH_PLU, L1_RUN, L2_RUN, SHARED_BATCH
from tests.support.day_stores import (
    CycleWatch,
    Recorded,
    a_label_serial,
    labels_with_serial,
    outbox_left,
    pack_of_label,
    record_seqs,
    recorded_on_runs,
    run_numbers,
    runs_with_batch,
    trace_recorded,
)
from tests.support.mosquitto import Mosquitto
from tests.support.paths import REPO, repo_pythonpath
from tests.support.pg_database import fresh_database
from tests.support.ports import free_port
from tests.support.processes import Group
from tests.support.sync_harness import drain_in_process
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOKEN = "central-day.dGVzdHMgb25seTogbm90IGEgcmVhbCByZWFkIHRva2Vu"


@dataclass(frozen=True)
class SiteSpec:
    site: str
    gateway: str
    seed: int
    first_label: int
    """The labeller's first serial: each site its own range, so a serial names one label."""


SITES = (
    SiteSpec("hull", "hull-gw1", seed=1, first_label=100_001),
    SiteSpec("grimsby", "grimsby-gw1", seed=2, first_label=500_001),
)


@dataclass
class PlayedSite:
    spec: SiteSpec
    config: Path
    store: Path


def _get(api: str, path: str, **params: str) -> Any:
    answer = httpx.get(
        f"{api}/api/v1{path}",
        params=params,
        headers={"authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:2000])
    return answer.json()


def _gateway_report(site: PlayedSite, run: str) -> Any:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "report",
            run,
            "--json",
            "--config",
            str(site.config),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": repo_pythonpath()},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


def _start_gateways(
    tmp_path: Path, broker: Mosquitto, simulators: list[Simulators], groups: list[Group]
) -> tuple[list[PlayedSite], list[Gateway]]:
    played, gateways = [], []
    for spec, sim in zip(SITES, simulators, strict=True):
        # Each gateway its own folder: its control socket lives beside its store.
        (tmp_path / spec.gateway).mkdir()
        store = tmp_path / spec.gateway / "lineside.db"
        config = tmp_path / spec.gateway / "gateway.toml"
        config.write_text(
            day_gateway_config(sim.addresses, store, broker, gateway=spec.gateway, site=spec.site)
        )
        gateway = Gateway(config, tmp_path / f"{spec.gateway}.log", name=spec.gateway)
        groups.append(gateway)
        gateways.append(gateway)
        played.append(PlayedSite(spec, config, store))
    return played, gateways


async def _play_the_day(
    tmp_path: Path, broker: Mosquitto, dsn: str, groups: list[Group]
) -> list[PlayedSite]:
    """Start everything, pack a demo cycle on every line, stop the gateways cleanly and
    deliver what their outboxes still hold; the sites played."""
    ingest = Ingest(broker, dsn, tmp_path / "ingest.log")
    groups.append(ingest)
    simulators = [
        Simulators(tmp_path / f"{spec.site}-sim.log", seed=spec.seed, first_label=spec.first_label)
        for spec in SITES
    ]
    groups += simulators
    for sim in simulators:
        await sim.listening()
    await ingest.connected()
    played, gateways = _start_gateways(tmp_path, broker, simulators, groups)
    for gateway in gateways:
        await gateway.ready()
    # The day ends once every line has packed a whole cycle of the demo scenario (all its
    # faults) and a few packs more, and each gateway has seen a HACCP breach come and go
    # and a label gap.
    watch = CycleWatch(
        [site.store for site in played],
        ("cw1", "cw2"),
        CYCLE_PACKS + 10,
        (("haccp_upper", "raised"), ("haccp_upper", "cleared"), ("label_gap", "raised")),
    )
    await wait_for(
        lambda: all(g.alive() for g in gateways) and watch.done(),
        150,
        "a demo cycle packed on every line",
        interval=0.2,
    )
    for gateway in gateways:
        assert gateway.end() == 0, gateway.tail()
    for sim in simulators:
        sim.end()
    for site in played:
        await drain_in_process(site.store, broker, site.spec.site, site.spec.gateway)
        assert outbox_left(site.store) == 0
    return played


def _check_every_record_arrived(dsn: str, played: list[PlayedSite]) -> None:
    with psycopg.connect(dsn) as conn:
        for site in played:
            gw = site.spec.gateway
            for table in ("packs", "label_scans", "temperatures", "alerts", "run_versions"):
                stored = {
                    int(s)
                    for (s,) in conn.execute(
                        f"SELECT seq FROM {table} WHERE gateway = %s",
                        (gw,),
                    )
                }
                assert stored == record_seqs(site.store, table), (gw, table)
            conflicts = conn.execute("SELECT count(*) FROM conflicts").fetchone()
            assert conflicts == (0,)


def _gateway_summary(site: PlayedSite, run: str) -> Any:
    """The per-run analytics row from the gateway's own store, by the read side's own
    summary of the gateway's RunReport."""
    report = build_report(site.store, run)
    row = run_summary(
        report, run_losses(site.store, report), gateway=site.spec.gateway, site=site.spec.site
    )
    return jsonable(row)


def _check_reports(api: str, played: list[PlayedSite]) -> None:
    """Every run of every gateway: the API's report is the gateway's own, exactly, and so
    is its summary row (packs, mean, giveaway, ℮ verdict, breaches and their duration,
    label gaps, missed packs)."""
    every = []
    for site in played:
        runs = run_numbers(site.store)
        assert {L1_RUN, L2_RUN} <= set(runs), runs
        every += [(site, run) for run in runs]
    # `lineside report` is a process each: a few at once.
    with ThreadPoolExecutor(4) as pool:
        own = list(pool.map(lambda job: _gateway_report(*job), every))
    seen: dict[str, Any] = {}
    for (site, run), expected in zip(every, own, strict=True):
        gw = site.spec.gateway
        assert _get(api, f"/runs/{run}/report", gateway=gw) == expected, (gw, run)
        summary = _get(api, f"/runs/{run}/summary", gateway=gw)
        assert summary == _gateway_summary(site, run), (gw, run)
        seen[f"{gw}/{run}"] = summary
    # The comparisons above compared a real day, not empty documents.
    for site in played:
        gw = site.spec.gateway
        l1, l2 = seen[f"{gw}/{L1_RUN}"], seen[f"{gw}/{L2_RUN}"]
        # (A loaded machine makes the gateway miss packs, as a real one would: they are
        # counted as missed, and compared above like every other figure.)
        assert min(l1["packs"], l2["packs"]) > CYCLE_PACKS // 5, (l1["packs"], l2["packs"])
        assert l1["haccp_breaches"] > 0, "the long P1 excursion is a HACCP breach"
        assert l1["label_gaps"] > 0, "the labeller skipped three numbers"
        assert l1["emark_batches"] > 0, "℮ batches closed"
        assert l1["emark_verdict"] is not None
        catch = [p for p in l2["products"] if p["plu"] == CATCH_PLU]
        assert [(p["catch_weight"], p["packs"] > 0) for p in catch] == [(True, True)], catch


def _check_batch_trace(api: str, played: list[PlayedSite]) -> None:
    expected = Recorded({}, {})
    runs_expected = set()
    for site in played:
        runs = runs_with_batch(site.store, SHARED_BATCH)
        assert runs == sorted([L1_RUN, L2_RUN]), runs
        runs_expected |= {(site.spec.gateway, r) for r in runs}
        found = recorded_on_runs(site.store, site.spec.gateway, runs)
        expected.packs.update(found.packs)
        expected.labels.update(found.labels)
    trace = _get(api, f"/trace/batch/{SHARED_BATCH}")
    assert {(r["run"]["gateway"], r["run"]["run_number"]) for r in trace["runs"]} == runs_expected
    got = trace_recorded(trace)
    assert got.packs == expected.packs
    assert got.labels == expected.labels
    assert len(expected.packs) > CYCLE_PACKS
    assert len(expected.labels) > CYCLE_PACKS // 2


def _check_serial_trace(api: str, played: list[PlayedSite]) -> None:
    site = played[-1]
    serial = a_label_serial(site.store, L1_RUN)
    expected: dict[tuple[str, int], Any] = {}
    for other in played:
        expected.update(labels_with_serial(other.store, other.spec.gateway, serial))
    assert len(expected) == 1, expected  # each site numbers its labels from its own range
    trace = _get(api, f"/trace/serial/{serial}")
    got = trace_recorded(trace)
    assert got.labels == expected
    assert [(r["run"]["gateway"], r["run"]["run_number"]) for r in trace["runs"]] == [
        (site.spec.gateway, L1_RUN)
    ]
    assert trace["batch_codes"] == [SHARED_BATCH]  # the L1 run's only batch code
    assert trace["unmatched_labels"] == []
    # Its pack: the one the line numbered with the label's number, on the same run.
    pack = pack_of_label(site.store, site.spec.gateway, serial)
    assert [(p["run_number"], p["line"]) for p in pack.values()] == [(L1_RUN, "L1")]
    assert got.packs == pack


async def test_a_simulated_day_reads_back_exactly_as_the_gateways_recorded_it(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "api-tokens"
    write_tokens(tokens, {"central-day": hash_token(TOKEN)})
    with (
        fresh_database("lineside_day") as dsn,
        Mosquitto(tmp_path / "broker") as broker,
        ended([]) as groups,
    ):
        played = await _play_the_day(tmp_path, broker, dsn, groups)
        _check_every_record_arrived(dsn, played)
        api = ReadApi(dsn, tokens, free_port(), tmp_path / "api.log")
        groups.append(api)
        await asyncio.to_thread(api.wait_up)
        base = api.base
        await asyncio.to_thread(_check_reports, base, played)
        await asyncio.to_thread(_check_batch_trace, base, played)
        await asyncio.to_thread(_check_serial_trace, base, played)
