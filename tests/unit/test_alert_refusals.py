"""An operator naming an alert that is not standing is told why it is not found."""

from __future__ import annotations

import pytest

from gateway.control_commands import AlertControl, CommandError


def _missing() -> list[object]:
    raise KeyError("a8c162")


def test_an_unknown_or_closed_alert_is_refused_with_where_to_look() -> None:
    with pytest.raises(CommandError) as info:
        AlertControl._call(_missing)
    message = str(info.value)
    assert message.startswith("unknown alert 'a8c162'")
    assert "closed" in message
    assert "lineside alerts" in message
