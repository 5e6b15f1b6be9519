"""``lineside warehouse token`` (read tokens, printed once, stored hashed) and the refusals of
``lineside warehouse serve`` before it opens anything (gateway/commands/warehouse_serve.py,
docs/warehouse-api.md §1 and §3)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway import logs
from gateway.cli import main
from gateway.commands.common import EXIT_OK, EXIT_USAGE
from sync.ingest.auth import TokenFile, read_tokens


@pytest.fixture(autouse=True)
def _no_logging_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    # The command sets up the process's logging first; a test process keeps its own.
    monkeypatch.setattr(logs, "configure_logging", lambda **_: None)


def test_a_token_is_printed_once_and_only_its_hash_is_kept(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tokens = tmp_path / "api-tokens"
    assert main(["warehouse", "token", "add", "powerbi", "--tokens", str(tokens)]) == EXIT_OK
    token = capsys.readouterr().out.strip()
    assert token.startswith("powerbi.")
    assert len(token) > 40
    text = tokens.read_text()
    assert token not in text
    assert text.startswith("# name:hash of a warehouse API read token")
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
    assert TokenFile(path=tokens).authenticate(token) == "powerbi"
    assert TokenFile(path=tokens).authenticate(token + "x") is None

    assert (
        main(
            ["warehouse", "token", "add", "grafana", "--tokens", str(tokens), "--scheme", "scrypt"]
        )
        == EXIT_OK
    )
    capsys.readouterr()
    assert main(["warehouse", "token", "list", "--tokens", str(tokens)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["grafana\tscrypt", "powerbi\tsha256"]
    assert main(["warehouse", "token", "remove", "powerbi", "--tokens", str(tokens)]) == EXIT_OK
    assert set(read_tokens(tokens)) == {"grafana"}
    assert main(["warehouse", "token", "remove", "powerbi", "--tokens", str(tokens)]) == 1
    assert "powerbi has no token" in capsys.readouterr().err


def test_a_name_that_cannot_be_a_token_name_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tokens = tmp_path / "api-tokens"
    code = main(["warehouse", "token", "add", "power bi", "--tokens", str(tokens)])
    assert code == EXIT_USAGE
    assert "not a gateway id" in capsys.readouterr().err
    assert not tokens.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give read tokens, client certificates (tls_client_ca), or both"),
        (["--tokens", "T", "--tls-cert", "c.pem"], "give both tls_cert and tls_key"),
        (["--tokens", "T", "--tls-client-ca", "ca.pem"], "tls_client_ca needs tls_cert"),
        (
            ["--tokens", "T", "--postgres-dsn-env", "LINESIDE_NO_SUCH_VAR"],
            "$LINESIDE_NO_SUCH_VAR is not set",
        ),
        (["--tokens", "T", "--max-rows", "0"], "default_rows <= max_rows"),
    ],
)
def test_serve_refuses_what_cannot_work_before_opening_anything(
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LINESIDE_NO_SUCH_VAR", raising=False)
    (tmp_path / "T").write_text("")
    assert main(["warehouse", "serve", *args]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_malformed_tokens_file_is_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tokens = tmp_path / "api-tokens"
    tokens.write_text("powerbi:md5:abc\n")
    assert main(["warehouse", "serve", "--tokens", str(tokens)]) == EXIT_USAGE
    assert "unknown hash scheme 'md5'" in capsys.readouterr().err
