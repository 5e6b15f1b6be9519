"""Why an OPC UA session could not be set up (steps 1-4 of :mod:`adapters.opcua.client`),
with certificate problems named precisely: which side refused which certificate."""

from __future__ import annotations

from typing import Final

from asyncua.ua.status_codes import StatusCodes
from asyncua.ua.uaerrors import UaStatusCodeError

from adapters.opcua.security import SecureChannelSetup
from adapters.opcua.session import Session
from adapters.opcua.status import describe_status, is_security_code, status_name, translate_error
from gateway.core.errors import DeviceError, DeviceSecurityError

_BAD_SECURITY_CHECKS: Final = int(StatusCodes.BadSecurityChecksFailed)


def connect_error(device_id: str, exc: BaseException, session: Session) -> DeviceError:
    """Translate a failure of steps 1-4, naming certificate problems precisely."""
    setup = session.security
    if setup is None:
        return translate_error(device_id, exc, "connect")
    code = int(exc.code) if isinstance(exc, UaStatusCodeError) else None
    channel_opened = bool(session.reached & {"channel_open", "connected"})
    if "socket_open" in session.reached and not channel_opened:
        return _channel_refused(device_id, exc, code, setup)
    if code is not None and is_security_code(code):
        if setup.validator.refused == code:
            return DeviceSecurityError(
                device_id,
                f"the server certificate (SHA-1 {setup.server_thumbprint}) was refused by "
                f"this gateway: {describe_status(code)}",
            )
        return DeviceSecurityError(
            device_id,
            "the server refused this gateway's certificate or user credentials: "
            f"{describe_status(code)}",
        )
    return translate_error(device_id, exc, "connect")


def _channel_refused(
    device_id: str, exc: BaseException, code: int | None, setup: SecureChannelSetup
) -> DeviceError:
    """OpenSecureChannel failed after the TCP connection was made."""
    if code is not None and code != _BAD_SECURITY_CHECKS:
        if is_security_code(code):
            return DeviceSecurityError(
                device_id,
                "the server rejected this gateway's certificate while opening the secure "
                f"channel: {describe_status(code)}",
            )
        return translate_error(device_id, exc, "OpenSecureChannel")
    if isinstance(exc, TimeoutError):
        detail = "no answer"
    elif code is not None:
        detail = status_name(code)
    else:
        detail = "connection closed"
    pin = "pinned certificate" if setup.pinned else "certificate of its endpoint description"
    # A secure channel request is encrypted for the server certificate we hold (OPC
    # 10000-6 §6.7.2.3); a server with another key cannot read it and drops or refuses
    # it. Servers may also refuse a client certificate they do not trust this way.
    return DeviceSecurityError(
        device_id,
        f"server certificate does not match the {pin} (SHA-1 {setup.server_thumbprint}): "
        f"the server did not accept a {setup.policy} SignAndEncrypt channel encrypted "
        f"for that certificate ({detail}); or the server does not trust this gateway's "
        "certificate",
    )
