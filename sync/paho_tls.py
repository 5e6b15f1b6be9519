"""A TLS socket for paho that closes itself when its handshake fails.

paho wraps its TCP socket and calls ``do_handshake()`` inside ``_create_socket``; when the
handshake fails (a broker certificate from another CA, a refused client certificate) the
exception leaves that function and the wrapped socket with it, still open. It is referenced
only from the exception's traceback, a reference cycle, so it stays open until the cyclic
garbage collector happens to run: the broker keeps a half-done TLS connection, and the
gateway holds one more descriptor, for every refused attempt in between (one per reconnect
delay for as long as the certificates are wrong). Python then reports it as an unclosed
socket (``ResourceWarning``) wherever the collector runs.

:func:`closing_on_failed_handshake` makes a context wrap sockets as
:class:`HandshakeClosingSocket`, which closes the connection before the error leaves it.
The context's other settings, and every socket whose handshake succeeds, are unchanged.
"""

from __future__ import annotations

import ssl


class HandshakeClosingSocket(ssl.SSLSocket):
    """An :class:`ssl.SSLSocket` whose failed handshake also closes it."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise  # a non-blocking handshake that is not finished yet: not a failure
        except BaseException:
            self.close()
            raise


def closing_on_failed_handshake(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, now wrapping sockets as :class:`HandshakeClosingSocket` (changed in place:
    a client's context is its own, made from the config for it)."""
    context.sslsocket_class = HandshakeClosingSocket
    return context
