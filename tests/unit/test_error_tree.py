"""One exception tree: every error the project raises across a boundary is a LinesideError,
and gateway/core/errors.py draws all of them."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import gateway.core.errors
from gateway.core.errors import LinesideError

PACKAGES = ("gateway", "adapters", "rules", "sync", "tui", "central")

# Errors that callers also catch as a built-in kind keep that base (the tree shows it in
# brackets): changing it would silently change what an ``except ValueError`` catches.
BUILT_IN_BASES = {
    "gateway.core.codecs.registers.RegisterDecodeError": ValueError,
    "sync.mqtt_uplink.UplinkRefused": ConnectionError,
    "sync.protocol.ProtocolError": ValueError,
    "sync.record_schema.SchemaViolation": ValueError,
    "sync.ingest.facts.FactError": ValueError,
    "sync.ingest.auth.TokenFileError": ValueError,
    "sync.ingest.ack_keys.AckKeyFileError": ValueError,
    "gateway.control_client.ControlClientError": ValueError,
    "gateway.api.InvalidRequest": ValueError,
    "gateway.api.GatewayUnavailable": ConnectionError,
    "gateway.report.ReportError": LookupError,
    "central.api.problems.BadRequest": ValueError,
    "gateway.demo_site.DemoAlreadyRunning": RuntimeError,
    "central.errors.NotFound": LookupError,
    "central.errors.Ambiguous": LookupError,
}


def _project_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined in the project's packages, by dotted name."""
    found: dict[str, type[BaseException]] = {}
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            module = importlib.import_module(info.name)
            for name, obj in vars(module).items():
                if (
                    inspect.isclass(obj)
                    and issubclass(obj, BaseException)
                    and obj.__module__ == module.__name__
                ):
                    found[f"{module.__name__}.{name}"] = obj
    return found


EXCEPTIONS = _project_exceptions()
PUBLIC = {name: cls for name, cls in EXCEPTIONS.items() if not cls.__name__.startswith("_")}


def test_the_project_defines_errors_outside_the_core() -> None:
    # The walk must see the leaves defined beside their code, or the tests below prove nothing.
    assert "sync.protocol.ProtocolError" in PUBLIC
    assert "gateway.control_commands.CommandError" in PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_error_is_in_the_tree(name: str) -> None:
    # Private classes (``_Retry``, ``_Disconnected``) are signals inside one module and never
    # leave it; everything else can cross a boundary and must be catchable as LinesideError.
    assert issubclass(PUBLIC[name], LinesideError)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_tree_is_drawn_in_the_core_errors_docstring(name: str) -> None:
    drawing = gateway.core.errors.__doc__ or ""
    assert re.search(rf"^ +{PUBLIC[name].__name__}\b", drawing, re.MULTILINE)


@pytest.mark.parametrize(("name", "base"), sorted(BUILT_IN_BASES.items()))
def test_errors_keep_the_built_in_base_their_callers_catch(
    name: str, base: type[BaseException]
) -> None:
    assert issubclass(PUBLIC[name], base)
    assert issubclass(PUBLIC[name], LinesideError)


def test_erp_and_sync_branches_hang_on_the_tree() -> None:
    from gateway.core.errors import ErpError, SyncError  # noqa: PLC0415
    from sync.ingest.warehouse import WarehouseUnavailable  # noqa: PLC0415

    assert issubclass(ErpError, LinesideError)
    assert issubclass(WarehouseUnavailable, SyncError)
