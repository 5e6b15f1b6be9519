"""``lineside ack``, ``shelve`` and ``alerts`` refuse a ``--rule`` no alert can carry, with
the nearest id, before asking the gateway: "no alert awaiting acknowledgement" would read
as all clear when the id is only misspelt."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.cli import main
from gateway.commands.common import EXIT_USAGE

SOCKET = "/nonexistent/lineside-control.sock"


@pytest.mark.parametrize(
    "command",
    [
        ["ack", "--operator", "X"],
        ["shelve", "--operator", "X", "--minutes", "5"],
        ["alerts"],
    ],
)
def test_an_unknown_rule_is_named_with_the_nearest_one(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--socket", SOCKET, "--rule", "label_wieght"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert (
        f"lineside {command[0]}: unknown rule 'label_wieght'; did you mean 'label_weight'?" in err
    )
    assert "cannot reach" not in err


def test_a_rule_nothing_is_near_is_named_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ack", "--socket", SOCKET, "--operator", "X", "--rule", "bogus_rule"]) == 2
    assert "unknown rule 'bogus_rule'\n" in capsys.readouterr().err


@pytest.mark.parametrize("rule", ["label_weight", "sync_quarantined", "store_full", "intake_shed"])
def test_a_known_rule_goes_to_the_gateway(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[dict[str, Any]] = []

    def send(_target: object, request: dict[str, Any]) -> dict[str, Any]:
        sent.append(request)
        return {"ok": True, "alerts": []}

    monkeypatch.setattr("gateway.commands.operator.send_control", send)
    assert main(["ack", "--socket", SOCKET, "--operator", "X", "--rule", rule]) == 0
    [request] = sent
    assert request["rule"] == rule
