"""``lineside erp-check URL`` against a hostile HTTP server on loopback.

The server is a raw asyncio listener that answers every request with one canned response,
so the test controls each byte: escape sequences in keys and values, a redirect elsewhere.
The body size, stall, nesting and NaN bounds are proven in tests/integration/test_erp_check.py
and tests/integration/test_erp_http.py; this file covers what reaches the terminal.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

import pytest

from gateway.erp_check import MAX_CHECKED_RUNS, MAX_SHOWN_FINDINGS
from tests.integration.test_erp_check import erp_check

ESC = "\x1b]0;owned\x07\x1b[2J"
CSI = "\x9b31m"  # the one-character C1 form of ESC [
BIDI = "\u202e"


class HostileHttp:
    """Answers every request on a free loopback port with ``response`` (raw bytes)."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(self.response)
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api/runs"


def json_response(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Connection: close\r\n\r\n" + body


@pytest.fixture
async def hostile() -> AsyncIterator[HostileHttp]:
    peer = HostileHttp(b"")
    peer.server = await asyncio.start_server(peer._serve, "127.0.0.1", 0)
    async with peer.server:
        yield peer


def _page_with_escapes() -> bytes:
    run = {
        "RunNumber": f"R0105-L1-01{CSI}",
        "Line": f"L1{BIDI}",
        f"Evil{ESC}Key": 1,
        "Updated": f"not a date{CSI}",
    }
    return json.dumps({"runs": [run], "next": None}, ensure_ascii=False).encode()


def _no_control_characters(text: str) -> None:
    for bad in ("\x1b", "\x9b", "\x07", BIDI):
        assert bad not in text, (bad, text)


async def test_escape_sequences_in_keys_and_values_never_reach_the_terminal(
    hostile: HostileHttp,
) -> None:
    hostile.response = json_response(_page_with_escapes())
    result = await erp_check(hostile.url)
    assert result.code == 1, result
    assert "does not conform" in result.out
    _no_control_characters(result.out)
    # Shown escaped, so the operator still sees what the ERP sent.
    assert "not a date\\x9b31m" in result.out, result.out


async def test_json_output_escapes_control_characters(hostile: HostileHttp) -> None:
    hostile.response = json_response(_page_with_escapes())
    result = await erp_check(hostile.url, "--json")
    assert result.code == 1, result
    _no_control_characters(result.out)
    report = json.loads(result.out)
    assert any(CSI in f["message"] for f in report["findings"]), report["findings"]


async def test_a_redirect_to_another_host_or_scheme_is_not_followed(hostile: HostileHttp) -> None:
    for location in ("http://198.51.100.7/api/runs", f"file:///etc/passwd{CSI}"):
        hostile.response = (
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
        result = await erp_check(hostile.url)
        assert result.code == 4, result
        assert "redirects are not followed" in result.out, result.out
        _no_control_characters(result.out)


async def test_invalid_utf8_is_a_clear_refusal(hostile: HostileHttp) -> None:
    hostile.response = json_response(b'{"runs": [{"RunNumber": "\xff\xfe"}], "next": null}')
    result = await erp_check(hostile.url)
    assert result.code == 4, result
    assert "not UTF-8" in result.out, result.out
    assert "Traceback" not in result.err


async def test_deep_nesting_inside_the_size_bound_is_a_clear_answer(hostile: HostileHttp) -> None:
    # 900 levels parse (below the decoder's recursion limit) and then reach the contract
    # checker, which walks values recursively.
    body = b'{"runs": [{"Products": ' + b"[" * 900 + b"]" * 900 + b"}]}"
    hostile.response = json_response(body)
    result = await erp_check(hostile.url)
    assert result.code in (1, 4), result
    assert "Traceback" not in result.err, result.err


async def test_a_page_of_a_million_runs_is_checked_in_bounded_time_and_output(
    hostile: HostileHttp,
) -> None:
    # A million empty runs fit in the default max_response_bytes (5 MiB). Unbounded, the
    # check took minutes and gigabytes and printed four million findings.
    hostile.response = json_response(b"[" + b",".join([b"{}"] * 1_000_000) + b"]")
    result = await erp_check(hostile.url)
    assert result.code == 1, result.err
    assert "the first page (1000000 runs) does not conform" in result.out
    assert f"Only the first {MAX_CHECKED_RUNS} of the 1000000 runs were checked" in result.out
    assert "more (--json lists them all)" in result.out
    assert len(result.out.splitlines()) < MAX_SHOWN_FINDINGS + 10
    result = await erp_check(hostile.url, "--json")
    report = json.loads(result.out)
    assert (report["runs"], report["checked_runs"]) == (1_000_000, MAX_CHECKED_RUNS)
    assert len(report["findings"]) <= 10 * MAX_CHECKED_RUNS


async def test_an_answer_that_never_ends_is_cut_off_at_the_timeout() -> None:
    # A slowloris server: a valid start, then one byte at a time, for ever.
    async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(b"1\r\n[\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)

    server = await asyncio.start_server(drip, "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        result = await erp_check(f"http://127.0.0.1:{port}/api/runs", "--timeout", "0.5")
    assert result.code == 4, result
    assert "did not answer within 0.5 s" in result.out, result.out
