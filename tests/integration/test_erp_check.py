"""``lineside erp-check URL`` against the ERP simulator on loopback (docs/erp-contract.md)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.erp.simulator import ErpFault, ErpSimulator
from tests.integration.test_erp_http import tls_files  # noqa: F401  (a fixture: the test CA)

NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
TOKEN = "erp-check-token-0123"


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


async def erp_check(*args: str) -> Outcome:
    """Run the command in its own process group while the simulator serves this loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "erp-check",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode is not None
    return Outcome(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def erp() -> AsyncIterator[ErpSimulator]:
    async with ErpSimulator(now=lambda: NOW) as simulator:
        yield simulator


async def test_the_simulated_erp_conforms(erp: ErpSimulator) -> None:
    result = await erp_check(erp.url)
    assert result.code == 0, result
    assert "conforms to the ERP contract" in result.out
    assert erp.methods_seen == {"GET"}


async def test_json_output_of_a_conforming_page(erp: ErpSimulator) -> None:
    result = await erp_check(erp.url, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["conforms"] is True
    assert report["runs"] >= 5
    assert report["findings"] == []


async def test_a_wrong_field_is_named_by_its_json_path(erp: ErpSimulator) -> None:
    erp.add_run(
        {
            "RunNumber": "R0105-L3-01",
            "Line": "L3",
            "BatchCodes": ["NO-SAL-260105-A20"],
            "Products": [{"PLU": "41099", "NominalWeight": "250g", "Tier": "Premium"}],
            "Status": "Planned",
            "Updated": "2026-01-05T09:59:00",
        }
    )
    result = await erp_check(erp.url, "--json")
    assert result.code == 1, result
    report = json.loads(result.out)
    assert report["conforms"] is False
    weight = [f for f in report["findings"] if f["path"].endswith("Products[0].NominalWeight")]
    assert weight, report["findings"]
    assert weight[0]["message"] == 'expected a number, got string "250g"'
    index = weight[0]["path"].split("]")[0] + "]"
    assert any(
        f["path"] == index and f["severity"] == "rejected" and "250g" in f["message"]
        for f in report["findings"]
    ), report["findings"]


async def test_garbage_rows_are_listed_field_by_field(erp: ErpSimulator) -> None:
    erp.set_fault(ErpFault.WRONG_TYPES)
    result = await erp_check(erp.url)
    assert result.code == 1, result
    assert "does not conform" in result.out
    lines = result.out.splitlines()
    assert any(".Updated: " in line and "not a date" in line for line in lines), result.out
    assert any(".RawMaterialKg: " in line for line in lines), result.out
    assert "docs/erp-contract.md" in result.out


async def test_an_html_login_page_is_no_page(erp: ErpSimulator) -> None:
    erp.set_fault(ErpFault.HTML_LOGIN)
    result = await erp_check(erp.url)
    assert result.code == 4, result
    assert "HTML login page" in result.out


async def test_a_body_above_the_size_bound_is_not_read(erp: ErpSimulator) -> None:
    erp.set_fault(ErpFault.HUGE)
    result = await erp_check(erp.url)
    assert result.code == 4, result
    assert "max_response_bytes" in result.out


async def test_the_token_file_is_sent_as_a_bearer_token(tmp_path: Path) -> None:
    token_file = tmp_path / "erp-token"
    token_file.write_text(TOKEN + "\n")
    async with ErpSimulator(now=lambda: NOW, token=TOKEN) as erp:
        refused = await erp_check(erp.url)
        accepted = await erp_check(erp.url, "--token-file", str(token_file))
        assert erp.requests[-1].authorization == f"Bearer {TOKEN}"
    assert refused.code == 4, refused
    assert "401" in refused.out
    assert accepted.code == 0, accepted
    assert TOKEN not in accepted.out + accepted.err


async def test_a_missing_token_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-token"
    result = await erp_check("http://127.0.0.1:9/api/runs", "--token-file", str(missing))
    assert result.code == 4, result
    assert str(missing) in result.out


async def test_https_with_the_sites_ca_file(
    tmp_path: Path,
    tls_files: dict[str, Path],  # noqa: F811
) -> None:
    token_file = tmp_path / "erp-token"
    token_file.write_text(TOKEN)
    async with ErpSimulator(
        now=lambda: NOW, certfile=tls_files["cert"], keyfile=tls_files["key"], token=TOKEN
    ) as erp:
        assert erp.url.startswith("https://")
        trusted = await erp_check(
            erp.url, "--token-file", str(token_file), "--ca-file", str(tls_files["ca"])
        )
        untrusted = await erp_check(erp.url, "--token-file", str(token_file))
    assert trusted.code == 0, trusted
    assert untrusted.code == 4, untrusted
    assert "TLS" in untrusted.out


async def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    result = await erp_check("https://127.0.0.1:9/api/runs", "--ca-file", str(missing))
    assert result.code == 4, result
    assert str(missing) in result.out
    assert "Traceback" not in result.err


async def test_a_url_that_is_not_http_is_refused_in_one_line() -> None:
    result = await erp_check("ftp://erp.example/runs")
    assert result.code == 4, result
    assert (
        result.out.strip()
        == "ftp://erp.example/runs: no page read: url must be http(s)://host/path"
    )
