"""Records forged in another gateway's name, and sequence numbers claimed before the real
gateway uses them (issue 18): refused, nothing forged stored, every real record exactly once.

Before: over MQTT the only check was that the topic matched the body, and the broker let
anyone publish anywhere; over HTTPS nothing was authenticated. A forged batch for sequence
numbers the victim had not used yet was stored, and the victim's real records were then
refused as "same sequence, different payload" and quarantined at the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.core.backoff import Backoff
from sync.https_uplink import HttpsUplink
from sync.ingest.http_app import INGEST_PATH
from sync.protocol import Batch, data_topic, encode_batch
from tests.security.conftest import (
    ATTACKER,
    NOT_AUTHORISED,
    SITE,
    VICTIM,
    Client,
    Ingest,
    alerts,
    gateway_uplink,
    has_alert,
    outbox_empty,
    quarantined,
)
from tests.support.gateway_tokens import token_for
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import check_conservation
from tests.support.uplink_harness import commit, pack, running_store
from tests.support.waiting import wait_for

FORGED_SEQS = list(range(1, 17))
"""Sequence numbers the victim has not used yet when they are forged (16, as in the review)."""


def forged_packs(seqs: list[int], *, gateway: str = VICTIM) -> Batch:
    """Plausible ``packs`` records in ``gateway``'s name: every field valid, the weights false."""
    records = tuple(
        (
            seq,
            {
                "ts_us": 1_000 + seq,
                "line": "L1",
                "device": "cw1",
                "net_g": 999.0,
                "pack_counter": seq,
                "flags": 0,
            },
        )
        for seq in seqs
    )
    return Batch(gateway, SITE, "packs", records)


async def victim_syncs(
    tmp_path: Path, broker: Mosquitto, ingest: Ingest, packs: int = 40
) -> list[int]:
    """The real gateway commits ``packs`` packs and syncs them; their sequence numbers."""
    async with (
        running_store(tmp_path / "victim") as store,
        gateway_uplink(store, broker) as uplink,
    ):
        seqs = await commit(store, [pack(i) for i in range(packs)])
        await wait_for(lambda: outbox_empty(store), 20, "the victim's outbox drained")
        assert await quarantined(store) == [], "none of the victim's records was refused"
        assert uplink.stats.records_quarantined == 0
    check_conservation(tmp_path / "victim" / "lineside.db", VICTIM, ingest.warehouse)
    return seqs


# --------------------------------------------------------------------------------------
# MQTT


async def test_mqtt_forged_batch_for_another_gateway_is_refused_by_the_broker(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    # A compromised gateway (its own valid login) publishes in the victim's name...
    raw = Client(shipped_broker, ATTACKER, client_id="forger")
    clients.append(raw)
    assert raw.connect() == 0
    topic = data_topic(SITE, VICTIM, "packs")
    assert raw.publish(topic, encode_batch(forged_packs([900, 901]))) == NOT_AUTHORISED

    # ...and so does its own gateway software, reconfigured to pose as the victim: every
    # batch is refused by the broker, quarantined at the forger with an alert, none stored.
    async with (
        running_store(tmp_path / "forger") as forger_store,
        gateway_uplink(forger_store, shipped_broker, gateway=VICTIM, login=ATTACKER) as forger,
    ):
        forged = await commit(forger_store, [pack(i) for i in range(5)])
        await wait_for(lambda: forger.stats.records_quarantined >= len(forged), 15)
        reasons = {reason for _, reason in await quarantined(forger_store)}
        assert all("PUBACK 0x87" in reason for reason in reasons), reasons
        await wait_for(lambda: has_alert(forger_store, "sync_quarantined"), 10, "an alert")

    # The victim's real records all land, exactly once, and nothing else does.
    await victim_syncs(tmp_path, shipped_broker, ingest)
    assert {gateway for gateway, _, _ in ingest.records()} == {VICTIM}
    assert ingest.conflicts() == 0
    # The broker logged the refusals (at debug level: see config/mosquitto/mosquitto.conf).
    log = shipped_broker.log_tail(10_000)
    assert f"Denied PUBLISH from {ATTACKER}" in log
    consumer = ingest.service.consumer
    assert consumer is not None
    assert consumer.stats.dropped_topic == 0, "nothing forged even reached the ingest"


async def test_mqtt_preclaimed_sequence_numbers_are_refused_and_the_real_records_land_once(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    attacker = Client(shipped_broker, ATTACKER, client_id="pre-claimer")
    clients.append(attacker)
    assert attacker.connect() == 0
    # Sequence numbers the victim has not used yet, in its name, before it uses them.
    payload = encode_batch(forged_packs(FORGED_SEQS))
    assert attacker.publish(data_topic(SITE, VICTIM, "packs"), payload) == NOT_AUTHORISED
    assert ingest.records() == []

    seqs = await victim_syncs(tmp_path, shipped_broker, ingest)
    assert set(FORGED_SEQS) <= set(seqs), "the forged numbers were the victim's next ones"
    # Every real record stored once with its real payload (999 g was the forgery).
    stored = ingest.records()
    assert sorted(seq for _, seq, _ in stored) == sorted(seqs)
    assert not any('"net_g":999.0' in payload for _, _, payload in stored)
    assert ingest.conflicts() == 0, "no real record refused as 'same sequence, different payload'"
    assert f"Denied PUBLISH from {ATTACKER}" in shipped_broker.log_tail(10_000)


# --------------------------------------------------------------------------------------
# HTTPS


def _headers(batch: Batch, token: str | None) -> dict[str, str]:
    headers = {"content-encoding": "deflate", "idempotency-key": batch.batch_id}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


async def test_https_forged_batch_is_refused_401_or_403_and_nothing_is_stored(
    tmp_path: Path,
    shipped_broker: Mosquitto,
    ingest: Ingest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    batch = forged_packs([900, 901])
    body = encode_batch(batch)
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    guessed = f"{VICTIM}.{'A' * 43}"
    async with httpx.AsyncClient(timeout=10) as http:
        answers = {
            "no token": await http.post(url, content=body, headers=_headers(batch, None)),
            "guessed token": await http.post(url, content=body, headers=_headers(batch, guessed)),
            "not bearer": await http.post(
                url, content=body, headers={**_headers(batch, None), "authorization": "Basic x"}
            ),
            "attacker's own token": await http.post(
                url, content=body, headers=_headers(batch, token_for(ATTACKER))
            ),
        }
    statuses = {what: answer.status_code for what, answer in answers.items()}
    assert statuses == {
        "no token": 401,
        "guessed token": 401,
        "not bearer": 401,
        "attacker's own token": 403,
    }
    assert answers["no token"].headers["www-authenticate"].startswith("Bearer")
    assert ingest.records() == []

    # The attacker's gateway software posing as the victim, with its own (valid) token:
    # refused, its records kept (not quarantined), and it raises an alert saying so.
    async with running_store(tmp_path / "forger") as forger_store:
        await commit(forger_store, [pack(i) for i in range(5)])
        uplink = HttpsUplink(
            forger_store,
            url=url,
            site=SITE,
            gateway=VICTIM,
            token=token_for(ATTACKER),
            poll_interval_s=0.02,
            backoff=Backoff(initial=0.05, maximum=0.2),
        )
        task = asyncio.create_task(uplink.run())
        try:
            await wait_for(lambda: has_alert(forger_store, "sync_unauthorized"), 10, "the alert")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert "HTTP 403" in uplink.stats.last_error
    assert ingest.service.app.stats.forbidden >= 2
    assert ingest.records() == []

    # The refusals are logged by the ingest, with the reason.
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "sync.ingest.http_app")
    assert "401 unauthorized" in logged
    assert f"403 forbidden: gateway {ATTACKER} may not send records of gateway '{VICTIM}'" in logged

    # The victim's own records still land, exactly once.
    await victim_syncs(tmp_path, shipped_broker, ingest)
    assert {gateway for gateway, _, _ in ingest.records()} == {VICTIM}


async def _https_victim(tmp_path: Path, ingest: Ingest, packs: int = 40) -> list[int]:
    """The real gateway syncs ``packs`` packs over HTTPS with its own token."""
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    async with running_store(tmp_path / "victim") as store:
        seqs = await commit(store, [pack(i) for i in range(packs)])
        uplink = HttpsUplink(
            store,
            url=url,
            site=SITE,
            gateway=VICTIM,
            token=token_for(VICTIM),
            max_records=10,
            poll_interval_s=0.02,
            backoff=Backoff(initial=0.05, maximum=0.2),
        )
        task = asyncio.create_task(uplink.run())
        try:
            await wait_for(lambda: outbox_empty(store), 20, "the victim's outbox drained")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await quarantined(store) == []
        assert await alerts(store, "sync_unauthorized") == []
    check_conservation(tmp_path / "victim" / "lineside.db", VICTIM, ingest.warehouse)
    return seqs


async def test_https_preclaimed_sequence_numbers_are_refused_and_the_real_records_land_once(
    tmp_path: Path, ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    batch = forged_packs(FORGED_SEQS)
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    async with httpx.AsyncClient(timeout=10) as http:
        for token in (None, token_for(ATTACKER)):
            answer = await http.post(
                url, content=encode_batch(batch), headers=_headers(batch, token)
            )
            assert answer.status_code in (401, 403)
    assert ingest.records() == []

    seqs = await _https_victim(tmp_path, ingest)
    assert set(FORGED_SEQS) <= set(seqs)
    stored = ingest.records()
    assert sorted(seq for _, seq, _ in stored) == sorted(seqs)
    assert not any('"net_g":999.0' in payload for _, _, payload in stored)
    assert ingest.conflicts() == 0
    assert any("refused POST" in r.getMessage() for r in caplog.records)


async def test_an_idempotency_key_reused_with_other_content_is_422_and_changes_nothing(
    ingest: Ingest, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    real = forged_packs([5, 6, 7])
    other: dict[str, Any] = {**dict(real.records[1][1]), "net_g": 111.0}
    changed = Batch(VICTIM, SITE, "packs", (real.records[0], (6, other), real.records[2]))
    assert changed.batch_id == real.batch_id
    url = f"http://127.0.0.1:{ingest.service.http_port}{INGEST_PATH}"
    headers = _headers(real, token_for(VICTIM))
    async with httpx.AsyncClient(timeout=10) as http:
        first = await http.post(url, content=encode_batch(real), headers=headers)
        again = await http.post(url, content=encode_batch(real), headers=headers)
        reused = await http.post(url, content=encode_batch(changed), headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.content == again.content  # a retry: the same ack
    assert reused.status_code == 422
    assert reused.json()["error"] == "idempotency_key_reused"
    # Nothing of the second body was stored or recorded as a conflict.
    assert [seq for _, seq, _ in ingest.records()] == [5, 6, 7]
    assert ingest.conflicts() == 0
    assert any("422 idempotency_key_reused" in r.getMessage() for r in caplog.records)
