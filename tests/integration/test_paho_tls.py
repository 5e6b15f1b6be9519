"""A paho client refused during the TLS handshake leaves no socket open behind it: the broker
presents a certificate from another CA, and the socket is closed before the error reaches
the caller, not when the garbage collector gets to it.

The broker is a TLS listener in a thread (the handshake is all that is under test)."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sync.paho_tls import HandshakeClosingSocket, closing_on_failed_handshake
from tests.support.pki import issue, make_ca


def _sockets_in(tb: TracebackType | None) -> list[ssl.SSLSocket]:
    """The TLS sockets the frames of a traceback hold: what stays alive as long as the
    exception does (a stored error, a reference cycle through the traceback)."""
    found = []
    while tb is not None:
        found += [v for v in tb.tb_frame.f_locals.values() if isinstance(v, ssl.SSLSocket)]
        tb = tb.tb_next
    return found


@pytest.fixture
def rogue_listener(tmp_path: Path) -> Iterator[int]:
    """A TLS listener on a free loopback port whose certificate comes from a CA the client
    does not trust; it answers handshakes until the test ends."""
    rogue = make_ca(tmp_path, "rogue-ca")
    pair = issue(tmp_path, rogue, "broker", server=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pair.cert, pair.key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with (
                conn,
                server.wrap_socket(conn, server_side=True, do_handshake_on_connect=False) as tls,
            ):
                tls.settimeout(2)
                with contextlib.suppress(ssl.SSLError, OSError):  # the client refuses us
                    tls.do_handshake()

    thread = threading.Thread(target=serve, name="rogue-tls-listener")
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        listener.close()


def _trusting_another_ca(tmp_path: Path) -> ssl.SSLContext:
    ca = make_ca(tmp_path, "our-ca")
    return ssl.create_default_context(cafile=str(ca.path))


def _refused(context: ssl.SSLContext, port: int) -> list[ssl.SSLSocket]:
    """Connect a paho client through ``context`` to the rogue listener; the TLS sockets its
    refusal's traceback still holds."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw-test")
    client.tls_set_context(context)
    with pytest.raises(ssl.SSLCertVerificationError) as refused:
        client.connect("127.0.0.1", port)
    sockets = _sockets_in(refused.tb)
    assert sockets, "the wrapped socket is in paho's frames"
    return sockets


def test_a_refused_handshake_closes_the_socket_at_once(tmp_path: Path, rogue_listener: int) -> None:
    sockets = _refused(closing_on_failed_handshake(_trusting_another_ca(tmp_path)), rogue_listener)
    assert all(isinstance(s, HandshakeClosingSocket) for s in sockets)
    assert [s.fileno() for s in sockets] == [-1] * len(sockets), "closed, though still held"


def test_without_it_the_socket_stays_open_while_the_error_is_held(
    tmp_path: Path, rogue_listener: int
) -> None:
    """What the module prevents, shown with the context as paho gets it otherwise."""
    sockets = _refused(_trusting_another_ca(tmp_path), rogue_listener)
    assert all(s.fileno() >= 0 for s in sockets)
    for s in sockets:
        s.close()  # closed here, so the garbage collector has nothing to warn about


def test_a_good_handshake_is_untouched(tmp_path: Path) -> None:
    """The class only adds a close on failure: a successful handshake leaves the socket open
    and usable, and a non-blocking one not yet finished is not a failure."""
    ca = make_ca(tmp_path, "ca")
    pair = issue(tmp_path, ca, "broker", server=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pair.cert, pair.key)
    client = closing_on_failed_handshake(ssl.create_default_context(cafile=str(ca.path)))
    left, right = socket.socketpair()
    with (
        server.wrap_socket(left, server_side=True, do_handshake_on_connect=False) as s,
        client.wrap_socket(right, server_hostname="localhost", do_handshake_on_connect=False) as c,
    ):
        assert isinstance(c, HandshakeClosingSocket)
        c.setblocking(False)
        with pytest.raises(ssl.SSLWantReadError):
            c.do_handshake()  # the server has not answered yet
        assert c.fileno() != -1
        done = threading.Thread(target=s.do_handshake)
        done.start()
        c.setblocking(True)
        c.do_handshake()
        done.join()
        c.sendall(b"ping")
        assert s.recv(4) == b"ping"
