"""sync.paho_poll: ``select``'s answers from ``poll``, for descriptors of any number.

Each case asks ``select.select`` and :func:`poll_select` the same question about a socket
pair in a known state and expects the same answer; then the same above descriptor 1023, where
``select.select`` itself refuses."""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Callable, Iterator

import paho.mqtt.client as paho_client
import pytest

from sync.paho_poll import install, poll_select
from tests.support.descriptors import low_descriptors_taken

Setup = Callable[[socket.socket, socket.socket], None]


def _fresh(_a: socket.socket, _b: socket.socket) -> None:
    """Nothing sent: writable, not readable."""


def _sent(_a: socket.socket, b: socket.socket) -> None:
    b.send(b"x")


def _peer_closed(_a: socket.socket, b: socket.socket) -> None:
    b.close()  # end of file: readable


def _full(a: socket.socket, _b: socket.socket) -> None:
    a.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            a.send(b"\0" * 65536)  # until its buffer is full: not writable


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    with a, b:
        yield a, b


@pytest.mark.parametrize("setup", [_fresh, _sent, _peer_closed, _full])
def test_the_same_answer_as_select(pair: tuple[socket.socket, socket.socket], setup: Setup) -> None:
    a, b = pair
    setup(a, b)
    expected = select.select([a], [a], [a], 0)
    assert poll_select([a], [a], [a], 0) == expected
    assert poll_select([a.fileno()], [], [], 0.01) == select.select([a.fileno()], [], [], 0.01)


def test_the_objects_come_back_in_the_order_given(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    a.send(b"x")
    b.send(b"y")
    readable, writable, _ = poll_select([b, a], [a, b], [], 0)
    assert readable == [b, a]
    assert writable == [a, b]


def test_a_wait_ends_when_a_descriptor_becomes_ready(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    assert poll_select([a], [], [], 0.02) == ([], [], [])  # the timeout passes
    b.send(b"x")
    assert poll_select([a], [], [], None) == ([a], [], [])  # no timeout: until ready


def test_what_select_refuses_is_refused_the_same_way(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    with pytest.raises(TypeError):
        poll_select([None], [], [], 0)  # paho's socket after a disconnect
    with pytest.raises(TypeError):
        select.select([None], [], [], 0)  # type: ignore[type-var]
    b.close()
    with pytest.raises(ValueError, match="negative"):
        poll_select([b], [], [], 0)  # a closed socket's fileno() is -1
    with pytest.raises(ValueError, match="negative"):
        poll_select([a], [], [], -1)
    fd = os.dup(a.fileno())
    os.close(fd)
    with pytest.raises(OSError, match="Bad file descriptor"):
        poll_select([fd], [], [], 0)


def test_a_descriptor_above_1023_is_watched() -> None:
    with low_descriptors_taken():
        a, b = socket.socketpair()
        with a, b:
            assert a.fileno() > 1023
            with pytest.raises(ValueError, match="filedescriptor out of range"):
                select.select([a], [], [], 0)  # the limit paho's loop met
            b.send(b"x")
            assert poll_select([a], [a], [], 0) == ([a], [a], [])


def test_install_gives_paho_the_poll_based_select() -> None:
    install()
    install()  # twice is once
    module_select = getattr(paho_client, "select")  # noqa: B009
    assert module_select.select is poll_select
    assert module_select.POLLIN == select.POLLIN  # the rest is the real module's
