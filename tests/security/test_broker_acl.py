"""The shipped broker authorisation (``config/mosquitto/``), on a real mosquitto: who may
publish and read what (issue 18).

Before, the central broker had to allow anonymous clients (``lineside ingest`` had no
credentials), anyone could publish anything, a retained ``green`` on a line's andon topic
showed green on every board while a CRITICAL alert was active, and the ingest's fixed client
id could be taken over with its persistent session.
"""

from __future__ import annotations

import json
from pathlib import Path

from sync.alert_feed import AlertFeed
from sync.andon import AndonPublisher
from sync.broker_auth import ANDON_BOARD_USER
from sync.protocol import (
    ANDON_SUBSCRIPTION,
    Ack,
    ack_topic,
    alerts_topic,
    andon_topic,
    data_topic,
    encode_ack,
    encode_batch,
    status_topic,
)
from tests.security.conftest import (
    ATTACKER,
    NOT_AUTHORISED,
    SITE,
    VICTIM,
    Client,
    Ingest,
    gateway_uplink,
    outbox_empty,
    quarantined,
)
from tests.security.test_forged_records import forged_packs, victim_syncs
from tests.support.mosquitto import Mosquitto
from tests.support.sync_harness import check_conservation
from tests.support.uplink_harness import commit, pack, running_store, transition
from tests.support.waiting import wait_for, wait_for_sync

GREEN = json.dumps({"v": 1, "line": "L1", "state": "green", "alerts": [], "updated_us": 9}).encode()


async def test_an_anonymous_client_cannot_publish_anything_anyone_acts_on(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    anonymous = Client(shipped_broker, client_id="anonymous")
    clients.append(anonymous)
    assert anonymous.connect() == NOT_AUTHORISED  # refused at CONNECT: nothing can follow
    assert "not authorised" in shipped_broker.log_tail(200)
    # A client that tries anyway, with a made-up login, fares no better.
    impostor = Client(shipped_broker, client_id="impostor")
    impostor.client.username_pw_set(VICTIM, "guessed")
    clients.append(impostor)
    assert impostor.connect() != 0
    # The real gateway and the ingest carry on: everything lands, exactly once.
    await victim_syncs(tmp_path, shipped_broker, ingest)
    consumer = ingest.service.consumer
    assert consumer is not None
    assert consumer.stats.dropped_protocol == consumer.stats.dropped_topic == 0


async def test_only_the_ingest_may_acknowledge_and_only_to_the_batchs_gateway(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    attacker = Client(shipped_broker, ATTACKER, client_id="ack-forger")
    clients.append(attacker)
    assert attacker.connect() == 0
    forged = Ack(VICTIM, f"{VICTIM}:packs:1-40:40", tuple(range(1, 41)))
    # Neither another gateway nor the victim itself may write an ack: the ingest's alone.
    assert attacker.publish(ack_topic(SITE, VICTIM), encode_ack(forged)) == NOT_AUTHORISED
    victim = Client(shipped_broker, VICTIM, client_id="self-acker")
    clients.append(victim)
    assert victim.connect() == 0
    assert victim.publish(ack_topic(SITE, VICTIM), encode_ack(forged)) == NOT_AUTHORISED
    victim.close()
    # Another gateway cannot read the victim's acks either.
    attacker.subscribe(ack_topic(SITE, VICTIM))
    await victim_syncs(tmp_path, shipped_broker, ingest)
    assert attacker.messages == []
    log = shipped_broker.log_tail(10_000)
    assert f"Denied PUBLISH from {ATTACKER}" in log
    assert f"Denied PUBLISH from {VICTIM}" in log


async def test_an_andon_board_reads_the_andon_and_nothing_else(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    board = Client(shipped_broker, ANDON_BOARD_USER, client_id="board")
    clients.append(board)
    assert board.connect() == 0
    board.subscribe("lineside/#")  # asks for everything; gets only what the ACL allows
    andon = AndonPublisher(SITE, VICTIM)
    async with running_store(tmp_path / "victim") as store:
        feed = AlertFeed(store, site=SITE, gateway=VICTIM)
        async with gateway_uplink(store, shipped_broker, andon=andon, alerts=feed) as uplink:
            await wait_for(lambda: uplink.state.value == "up", 10)
            andon.update("L1", "red", [{"alert_id": "t1", "severity": "critical"}])
            await commit(store, [transition(0, store.clock.wall_us())])
            await commit(store, [pack(i) for i in range(20)])
            await wait_for(lambda: outbox_empty(store), 20)
            await wait_for(lambda: andon_topic(SITE, VICTIM, "L1") in board.topics(), 10)
            await wait_for(lambda: alerts_topic(SITE, VICTIM, "L1") in board.topics(), 10)
    check_conservation(tmp_path / "victim" / "lineside.db", VICTIM, ingest.warehouse)
    # Data, acks and status all flowed meanwhile; the board saw none of them.
    assert board.topics() == {andon_topic(SITE, VICTIM, "L1"), alerts_topic(SITE, VICTIM, "L1")}
    # And it can write nothing: not an andon state, not data, not an ack.
    for topic in (
        andon_topic(SITE, VICTIM, "L1"),
        data_topic(SITE, VICTIM, "packs"),
        ack_topic(SITE, VICTIM),
        andon_topic(SITE, ANDON_BOARD_USER, "L1"),
    ):
        assert board.publish(topic, GREEN, retain=True) == NOT_AUTHORISED, topic
    assert f"Denied PUBLISH from {ANDON_BOARD_USER}" in shipped_broker.log_tail(10_000)


async def test_a_spoofed_retained_andon_is_refused(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    andon = AndonPublisher(SITE, VICTIM)
    board_topic = andon_topic(SITE, VICTIM, "L1")
    async with (
        running_store(tmp_path / "victim") as store,
        gateway_uplink(store, shipped_broker, andon=andon) as uplink,
    ):
        await wait_for(lambda: uplink.state.value == "up", 10)
        andon.update("L1", "red", [{"alert_id": "haccp-P1", "severity": "critical"}])
        # The attacker (another gateway's login) and a board's login try to turn it green.
        for login in (ATTACKER, ANDON_BOARD_USER):
            spoofer = Client(shipped_broker, login, client_id=f"spoofer-{login}")
            clients.append(spoofer)
            assert spoofer.connect() == 0
            assert spoofer.publish(board_topic, GREEN, retain=True) == NOT_AUTHORISED
            assert spoofer.publish(status_topic(SITE, VICTIM), b"online", retain=True) == (
                NOT_AUTHORISED
            )
        await commit(store, [pack(i) for i in range(10)])
        await wait_for(lambda: outbox_empty(store), 20)
        assert await quarantined(store) == []
        # A board that subscribes now gets the retained state: the victim's red.
        late = Client(shipped_broker, ANDON_BOARD_USER, client_id="late-board")
        clients.append(late)
        assert late.connect() == 0
        late.subscribe(ANDON_SUBSCRIPTION)
        wait_for_sync(lambda: bool(late.messages), 5, "the retained andon")
    retained = [json.loads(p) for t, p, r in late.messages if t == board_topic and r]
    assert [state["state"] for state in retained] == ["red"]
    # The attacker's own andon lives under its own gateway level: it cannot collide.
    attacker = Client(shipped_broker, ATTACKER, client_id="own-andon")
    clients.append(attacker)
    assert attacker.connect() == 0
    assert attacker.publish(andon_topic(SITE, ATTACKER, "L1"), GREEN, retain=True) == 0
    assert andon_topic(SITE, ATTACKER, "L1") != board_topic
    check_conservation(tmp_path / "victim" / "lineside.db", VICTIM, ingest.warehouse)
    log = shipped_broker.log_tail(10_000)
    assert f"Denied PUBLISH from {ATTACKER} (d0, q1, r1" in log
    assert f"Denied PUBLISH from {ANDON_BOARD_USER} (d0, q1, r1" in log


async def test_the_ingests_session_cannot_be_taken_over(
    tmp_path: Path, shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    consumer = ingest.service.consumer
    assert consumer is not None
    connects = consumer.stats.connects
    # Another login, the ingest's client id: the broker binds the id to the login instead.
    hijacker = Client(shipped_broker, ATTACKER, client_id=ingest.service.settings.client_id)
    clients.append(hijacker)
    assert hijacker.connect() == 0
    hijacker.client.subscribe("lineside/v1/+/gateways/+/data/+", qos=1)
    await victim_syncs(tmp_path, shipped_broker, ingest)
    assert consumer.connected
    assert consumer.stats.connects == connects, "the ingest was never kicked off"
    assert hijacker.messages == [], "and the hijacker got none of its batches"
    assert f"as {ATTACKER} (p5" in shipped_broker.log_tail(10_000)


async def test_a_gateway_login_cannot_publish_into_another_site_or_gateway(
    shipped_broker: Mosquitto, ingest: Ingest, clients: list[Client]
) -> None:
    victim = Client(shipped_broker, VICTIM, client_id="own-topics")
    clients.append(victim)
    assert victim.connect() == 0
    batch = encode_batch(forged_packs([1]))
    assert victim.publish(data_topic("other-site", ATTACKER, "packs"), batch) == NOT_AUTHORISED
    assert victim.publish(f"lineside/v1/{SITE}/L1/andon", GREEN, retain=True) == NOT_AUTHORISED
    assert victim.publish("anything/else", b"x") == NOT_AUTHORISED
    assert victim.publish(data_topic(SITE, VICTIM, "packs"), batch) == 0
    await wait_for(lambda: len(ingest.records()) == 1, 10)
