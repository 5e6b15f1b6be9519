"""The demo's own files and addresses: a fresh store per start, one demo per folder, and the
simulators on ports the kernel picked.

``config/demo.toml`` names fixed loopback ports so that it reads like a real site config. A
port that something else holds (a demo that did not stop, another program) must not make the
demo fail, so the simulators listen where the kernel puts them and the config is pointed at
those addresses before the gateway starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse, urlunparse

from gateway.config import (
    HttpErp,
    LinesideConfig,
    ModbusTcpDevice,
    OpcUaDevice,
    ScannerTcpDevice,
)
from gateway.core.errors import CommandLineError


class DemoAlreadyRunning(CommandLineError, RuntimeError):
    """Another demo holds this demo folder."""


class DemoLock:
    """An exclusive ``flock`` on ``demo.lock`` in the demo's folder, held for the demo's life.

    The lock belongs to the open file, so a back end started with the descriptor keeps the
    folder locked until it too has exited: a new demo never resets a store that a stopping one
    still writes.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "demo.lock"
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise DemoAlreadyRunning(
                f"another Lineside demo is running from {folder} (process {holder or '?'}); "
                "stop it (q in its terminal, or kill it) and start again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def reset_demo_store(config: LinesideConfig) -> None:
    """Remove what an earlier demo left: the store, its sequence file, the warehouse and the
    broker's persistence. The log is started afresh by the caller."""
    db = config.store.path
    folder = db.parent
    for path in (
        db,
        *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", ".seq", ".seq.tmp")),
        *(folder / f"warehouse.db{suffix}" for suffix in ("", "-wal", "-shm")),
        config.control_socket_path,
    ):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    shutil.rmtree(folder / "broker", ignore_errors=True)


def _port_of(address: str) -> int:
    """The port of ``host:port`` or of a URL."""
    if "://" in address:
        port = urlparse(address).port
        if port is None:
            raise ValueError(f"no port in {address}")
        return port
    return int(address.rsplit(":", 1)[1])


def _with_port(url: str, port: int) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(netloc=f"{parts.hostname}:{port}"))


def point_at_simulators(
    config: LinesideConfig, configured: dict[str, int], listening: dict[str, str]
) -> LinesideConfig:
    """``config`` with every device and the ERP that used a simulator's configured port moved
    to the port it actually listens on.

    ``configured`` maps a simulator to the port the config names (``{"opcua": 48400, …}``),
    ``listening`` to its actual address as ``run_simulators`` reports it.
    """
    moved = {configured[name]: _port_of(listening[name]) for name in configured}
    devices = []
    for configured_device in config.devices:
        device = configured_device
        if isinstance(device, OpcUaDevice):
            old = urlparse(device.endpoint).port
            if old in moved:
                device = device.model_copy(
                    update={"endpoint": _with_port(device.endpoint, moved[old])}
                )
        elif isinstance(device, ModbusTcpDevice | ScannerTcpDevice) and device.port in moved:
            device = device.model_copy(update={"port": moved[device.port]})
        devices.append(device)
    update: dict[str, object] = {"devices": tuple(devices)}
    erp = config.erp
    if isinstance(erp, HttpErp):
        old = urlparse(erp.url).port
        if old in moved:
            update["erp"] = erp.model_copy(update={"url": _with_port(erp.url, moved[old])})
    return config.model_copy(update=update)
