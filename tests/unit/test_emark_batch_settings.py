"""The ℮ batch settings are checked in one place (rules/emark_settings.py): by the batch, by
the tracker, and by the configuration, which names its own keys."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.core.errors import ConfigError
from rules.emark import EmarkTracker, InspectionBatch
from rules.emark_settings import (
    check_batch_max_packs,
    check_batch_settings,
    check_batch_window,
    check_min_packs,
)
from tests.support.configs import minimal_config_text

BAD_SETTINGS: list[tuple[float, int | None, int, str]] = [
    (0, None, 10, "batch_seconds must be positive and finite, got 0"),
    (-60, None, 10, "batch_seconds must be positive and finite, got -60"),
    (math.inf, None, 10, "batch_seconds must be positive and finite, got inf"),
    (math.nan, None, 10, "batch_seconds must be positive and finite, got nan"),
    (3600, 0, 10, "batch_max_packs must be positive, got 0"),
    (3600, None, 0, "min_packs must be at least 1, got 0"),
]


@pytest.mark.parametrize(("seconds", "max_packs", "min_packs", "message"), BAD_SETTINGS)
def test_batch_tracker_and_check_refuse_a_setting_with_one_message(
    seconds: float, max_packs: int | None, min_packs: int, message: str
) -> None:
    settings = {"batch_seconds": seconds, "batch_max_packs": max_packs, "min_packs": min_packs}
    seen: list[str] = []
    with pytest.raises(ValueError, match="must be") as info:
        check_batch_settings(batch_seconds=seconds, batch_max_packs=max_packs, min_packs=min_packs)
    seen.append(str(info.value))
    with pytest.raises(ValueError, match="must be") as info:
        EmarkTracker(batch_seconds=seconds, batch_max_packs=max_packs, min_packs=min_packs)
    seen.append(str(info.value))
    with pytest.raises(ValueError, match="must be") as info:
        InspectionBatch(
            line="L1",
            run_number="R1",
            plu="P1",
            qn=Decimal(250),
            start_us=0,
            batch_seconds=seconds,
            batch_max_packs=max_packs,
            min_packs=min_packs,
        )
    seen.append(str(info.value))
    assert seen == [message] * 3, settings


def test_the_checks_accept_the_defaults_and_a_capped_batch() -> None:
    check_batch_settings(batch_seconds=3600, batch_max_packs=None, min_packs=10)
    check_batch_settings(batch_seconds=0.001, batch_max_packs=1, min_packs=1)
    tracker = EmarkTracker(batch_seconds=60, batch_max_packs=500, min_packs=1)
    assert (tracker.batch_seconds, tracker.batch_max_packs, tracker.min_packs) == (60, 500, 1)


def test_each_check_names_the_setting_it_is_given() -> None:
    with pytest.raises(ValueError, match=r"^emark_batch_minutes must be positive and finite"):
        check_batch_window(-1.0, "emark_batch_minutes")
    with pytest.raises(ValueError, match=r"^cap must be positive, got -3$"):
        check_batch_max_packs(-3, "cap")
    with pytest.raises(ValueError, match=r"^emark_min_packs must be at least 1, got 0$"):
        check_min_packs(0, "emark_min_packs")


def _problems(tmp_path: Path, rules: str) -> dict[str, str]:
    path = tmp_path / "c.toml"
    path.write_text(minimal_config_text(tmp_path / "s.db") + f"\n[rules]\n{rules}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return {p.location: p.reason for p in info.value.problems}


@pytest.mark.parametrize(
    ("rules", "key", "reason"),
    [
        ("emark_batch_minutes = 0", "emark_batch_minutes", "must be positive and finite"),
        ("emark_batch_minutes = -1.5", "emark_batch_minutes", "must be positive and finite"),
        ("emark_min_packs = 0", "emark_min_packs", "must be at least 1, got 0"),
    ],
)
def test_config_refuses_batch_settings_with_the_rules_check(
    tmp_path: Path, rules: str, key: str, reason: str
) -> None:
    problems = _problems(tmp_path, rules)
    assert list(problems) == [f"rules.{key}"]
    assert f"{key} {reason}" in problems[f"rules.{key}"]


def test_config_settings_that_load_make_a_tracker(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        minimal_config_text(tmp_path / "s.db")
        + "\n[rules]\nemark_batch_minutes = 0.5\nemark_min_packs = 1\n"
    )
    rules = load_config(path).rules
    tracker = EmarkTracker(
        batch_seconds=rules.emark_batch_minutes * 60, min_packs=rules.emark_min_packs
    )
    assert (tracker.batch_seconds, tracker.min_packs) == (30.0, 1)
