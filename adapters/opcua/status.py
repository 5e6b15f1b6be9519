"""OPC UA status codes and values -> Lineside samples and errors. No I/O.

* Quality comes from the StatusCode severity bits (OPC 10000-4 §7.34.1): bits 31..30 are
  ``00`` Good, ``01`` Uncertain, ``10`` Bad, and ``11`` is reserved and "shall be treated as
  Bad". The status name (``BadSensorFailure``) goes into :attr:`TagSample.status`.
* A ``bit``/``mask`` tag reads part of an integer value (:func:`bit_field`).
* Variant values become plain Python values (OPC 10000-6 §5.1.2 built-in types): Boolean ->
  ``bool``, the integer types -> ``int``, Double -> ``float``, Float -> the shortest ``float``
  that is the same 32-bit value (a PLC REAL of 241.3 is 241.3 g, not 241.3000030517578 g),
  String/LocalizedText -> ``str``, ByteString -> ``bytes``, DateTime -> ISO 8601 text (UTC),
  Null -> ``None``. Anything else (arrays, structures, NodeIds...) is not a value a role can
  use: the sample is BAD with status ``BadTypeMismatch``, so it is rejected, never guessed at.
  NaN and infinities pass through unchanged; the role interpreter rejects them.
* asyncua and socket errors are translated into :mod:`gateway.core.errors` here, so no asyncua
  exception leaves :mod:`adapters.opcua`.
"""

from __future__ import annotations

import os
import socket
import ssl
from datetime import UTC, datetime, timedelta
from typing import Final

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.ua.status_codes import StatusCodes, get_name_and_doc
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography.exceptions import InvalidSignature

from adapters.base import Quality, TagSample
from gateway.core.codecs.bitfields import extract_field
from gateway.core.codecs.precision import shortest_float32
from gateway.core.errors import (
    DeviceBusy,
    DeviceConfigError,
    DeviceError,
    DeviceSecurityError,
    DeviceUnreachable,
)

__all__ = [
    "UA_ERRORS",
    "bit_field",
    "describe_status",
    "is_security_code",
    "plain_value",
    "quality_of",
    "sample_from",
    "source_stamp_us",
    "source_time_us",
    "status_name",
    "translate_error",
]

UA_ERRORS: Final = (OSError, EOFError, UaError, ValueError, InvalidSignature)
"""What asyncua and the socket layer raise for problems on the device side or the wire.

``TimeoutError`` and ``ConnectionError`` are ``OSError`` subclasses; ``UaError`` covers
status-code errors and asyncua's own failures; ``ValueError`` and ``InvalidSignature`` come
from decoding and from the cryptography checks of a secure channel.
"""

_SEVERITY_SHIFT: Final = 30  # OPC 10000-4 §7.34.1: severity in bits 31..30
_UNCERTAIN: Final = 0b01

BAD_TYPE_MISMATCH: Final = "BadTypeMismatch"


def _codes(*names: str) -> frozenset[int]:
    return frozenset(
        int(code) for name in names if (code := getattr(StatusCodes, name, None)) is not None
    )


# Certificates, secure channel and user identity (OPC 10000-4 §7.34.2 Table 177).
_SECURITY_CODES: Final = _codes(
    "BadCertificateInvalid",
    "BadCertificateTimeInvalid",
    "BadCertificateIssuerTimeInvalid",
    "BadCertificateHostNameInvalid",
    "BadCertificateUriInvalid",
    "BadCertificateUseNotAllowed",
    "BadCertificateIssuerUseNotAllowed",
    "BadCertificateUntrusted",
    "BadCertificateRevocationUnknown",
    "BadCertificateIssuerRevocationUnknown",
    "BadCertificateRevoked",
    "BadCertificateIssuerRevoked",
    "BadCertificateChainIncomplete",
    "BadCertificatePolicyCheckFailed",
    "BadSecurityChecksFailed",
    "BadSecurityPolicyRejected",
    "BadSecurityModeRejected",
    "BadNoValidCertificates",
    "BadUserAccessDenied",
    "BadIdentityTokenInvalid",
    "BadIdentityTokenRejected",
    "BadUserSignatureInvalid",
    "BadApplicationSignatureInvalid",
    "BadNonceInvalid",
)
# The server is alive but refuses more work now.
_BUSY_CODES: Final = _codes(
    "BadTooManySessions",
    "BadTooManySubscriptions",
    "BadTooManyMonitoredItems",
    "BadTooManyPublishRequests",
    "BadTooManyOperations",
    "BadServerTooBusy",
    "BadTcpServerTooBusy",
    "BadResourceUnavailable",
)
# The request is wrong for this server as configured: retrying soon will not help.
_CONFIG_CODES: Final = _codes(
    "BadNodeIdUnknown",
    "BadNodeIdInvalid",
    "BadAttributeIdInvalid",
    "BadNotReadable",
    "BadIndexRangeInvalid",
    "BadDataEncodingUnsupported",
    "BadFilterNotAllowed",
    "BadMonitoredItemFilterInvalid",
    "BadMonitoredItemFilterUnsupported",
    "BadDeadbandFilterInvalid",
    "BadTcpEndpointUrlInvalid",
    "BadServiceUnsupported",
)

_EXPLAIN: Final[dict[str, str]] = {
    "BadCertificateTimeInvalid": "a certificate is expired or not yet valid",
    "BadCertificateUntrusted": "a certificate is not trusted",
    "BadCertificateUriInvalid": "the certificate's application URI does not match",
    "BadCertificateUseNotAllowed": "the certificate's key usage does not allow this use",
    "BadCertificateRevoked": "the certificate has been revoked",
    "BadCertificateInvalid": "a certificate is malformed or lacks required fields",
    "BadSecurityChecksFailed": "the security checks of the secure channel failed",
    "BadUserAccessDenied": "the user name or password was refused",
    "BadIdentityTokenRejected": "the user name or password was refused",
    "BadIdentityTokenInvalid": "the user identity token was refused",
}


def quality_of(code: int) -> Quality:
    """Quality from a StatusCode's severity bits (OPC 10000-4 §7.34.1); ``11`` counts as Bad."""
    severity = (int(code) >> _SEVERITY_SHIFT) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == _UNCERTAIN:
        return Quality.UNCERTAIN
    return Quality.BAD


def status_name(code: int) -> str:
    """The symbolic name of a status code (``BadSensorFailure``), or its hex value."""
    name, _ = get_name_and_doc(int(code))
    if not name or name.lower().startswith("unknown"):
        return f"0x{int(code):08X}"
    return str(name)


def is_security_code(code: int) -> bool:
    """True for certificate, secure-channel and user-identity status codes."""
    return int(code) in _SECURITY_CODES


def plain_value(variant: ua.Variant | None) -> object:
    """A variant's value as plain Python (see the module docstring).

    Raises:
        TypeError: the variant holds something a role cannot use (array, structure...).
    """
    if variant is None:
        return None
    value = variant.Value
    vtype = variant.VariantType
    if value is None or vtype == ua.VariantType.Null:
        return None
    if isinstance(value, list | tuple):
        raise TypeError(f"arrays are not supported ({vtype.name}[{len(value)}])")
    if isinstance(value, bool):
        return value
    if vtype == ua.VariantType.Float and isinstance(value, float):
        return shortest_float32(value)
    if isinstance(value, int | float | str | bytes):
        # IntEnum members (e.g. ServerState) are ints; give the plain number.
        return int(value) if isinstance(value, int) else value
    if isinstance(value, ua.LocalizedText):
        return value.Text or ""
    if isinstance(value, datetime):
        stamp = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat()
    raise TypeError(f"values of type {getattr(vtype, 'name', vtype)} are not supported")


def sample_from(tag: str, data_value: ua.DataValue) -> TagSample:
    """One :class:`TagSample` from an asyncua ``DataValue`` (value, quality, status name)."""
    status = data_value.StatusCode
    code = int(status.value) if status is not None else 0
    quality = quality_of(code)
    try:
        value = plain_value(data_value.Value)
    except TypeError as exc:
        return TagSample(tag, None, Quality.BAD, f"{BAD_TYPE_MISMATCH}: {exc}")
    if quality is Quality.GOOD:
        return TagSample(tag, value)
    return TagSample(tag, value, quality, status_name(code))


def bit_field(sample: TagSample, *, bit: int | None, mask: int | None) -> TagSample:
    """The part of an integer value a ``bit``/``mask`` tag reads
    (:mod:`gateway.core.codecs.bitfields`).

    A good value that is not an integer (a Boolean, a Float, text) has no bits to pick: the
    sample is BAD with ``BadTypeMismatch``, so it is rejected rather than guessed at. Samples
    of other quality keep their value (the interpreter rejects them for their quality).
    """
    if bit is None and mask is None:
        return sample
    value = sample.value
    if isinstance(value, int) and not isinstance(value, bool):
        field = extract_field(value, bit=bit, mask=mask)
        return TagSample(sample.tag, field, sample.quality, sample.status, raw=value)
    if sample.quality is not Quality.GOOD:
        return sample
    kind = type(value).__name__
    return TagSample(
        sample.tag, None, Quality.BAD, f"{BAD_TYPE_MISMATCH}: bit/mask need an integer, got {kind}"
    )


def source_time_us(data_value: ua.DataValue) -> int | None:
    """The value's SourceTimestamp (else ServerTimestamp) in µs since the epoch, if any.

    Only used to tell which of several queued values belong together; record times come
    from the gateway clock.
    """
    for stamp in (data_value.SourceTimestamp, data_value.ServerTimestamp):
        if isinstance(stamp, datetime):
            aware = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
            return int(aware.timestamp() * 1_000_000)
    return None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def source_stamp_us(data_value: ua.DataValue) -> int | None:
    """The value's SourceTimestamp in µs since the epoch, or None when the server gave none.

    Only the device's own stamp places a value before or after a pack counter: a
    ServerTimestamp says when the server took or sent the value, which may be long after
    the device wrote it (see :mod:`adapters.opcua.packs`).
    """
    stamp = data_value.SourceTimestamp
    if not isinstance(stamp, datetime):
        return None
    aware: datetime = stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
    # Exact integer arithmetic: two stamps a microsecond apart must never compare equal.
    return (aware - _EPOCH) // timedelta(microseconds=1)


def describe_status(code: int) -> str:
    """``BadCertificateUntrusted (a certificate is not trusted)``: name and meaning."""
    name = status_name(code)
    explanation = _EXPLAIN.get(name)
    if explanation is None:
        _, doc = get_name_and_doc(int(code))
        explanation = str(doc).rstrip(".") if doc else ""
    return f"{name} ({explanation})" if explanation else name


def _status_error(device_id: str, code: int, action: str) -> DeviceError:
    message = f"{action}: {describe_status(code)}"
    if code in _SECURITY_CODES:
        return DeviceSecurityError(device_id, message)
    if code in _BUSY_CODES:
        return DeviceBusy(device_id, message)
    if code in _CONFIG_CODES:
        return DeviceConfigError(device_id, message)
    return DeviceUnreachable(device_id, message)


def _os_error_detail(exc: OSError) -> str:
    """What an OS error says, with the reason its error number stands for.

    asyncio reports a failed connect as ``OSError(errno, "Connect call failed (host, port)")``,
    whose text names no reason; ``str()`` would add only the number. The reason (address not
    available, network unreachable, ...) is what an engineer acts on. (A refusal and a timeout
    are named by :func:`translate_error` before it gets here; a resolver's or TLS error's
    number is not an errno, so those keep their own text.)
    """
    text = exc.strerror or str(exc) or type(exc).__name__
    if (
        isinstance(exc, socket.gaierror | ssl.SSLError)
        or not isinstance(exc.errno, int)
        or exc.errno <= 0
    ):
        return text
    reason = os.strerror(exc.errno)
    return text if reason in text else f"{text}: {reason}"


def translate_error(device_id: str, exc: BaseException, action: str) -> DeviceError:
    """Map an asyncua, socket or crypto error raised while doing ``action`` to our tree.

    Status codes are classified by :func:`_status_error`: certificate and identity codes ->
    :class:`DeviceSecurityError`, "too many"/busy codes -> :class:`DeviceBusy`, unknown node
    or unsupported filter -> :class:`DeviceConfigError`, the rest -> :class:`DeviceUnreachable`.
    """
    if isinstance(exc, DeviceError):
        return exc
    if isinstance(exc, UaStatusCodeError | ServiceError):
        return _status_error(device_id, int(exc.code), action)
    if isinstance(exc, TimeoutError):
        return DeviceUnreachable(device_id, f"{action}: no answer in time")
    if isinstance(exc, ConnectionRefusedError):
        return DeviceUnreachable(device_id, f"{action}: connection refused")
    if isinstance(exc, OSError):
        return DeviceUnreachable(device_id, f"{action}: {_os_error_detail(exc)}")
    if isinstance(exc, EOFError):
        return DeviceUnreachable(device_id, f"{action}: {str(exc) or type(exc).__name__}")
    if isinstance(exc, InvalidSignature):
        return DeviceSecurityError(
            device_id, f"{action}: the server's signature does not verify against its certificate"
        )
    text = str(exc)
    if "certificate mismatch" in text.lower():
        # asyncua's create_session: the certificate in CreateSessionResponse is not the one
        # the channel was opened with (OPC 10000-4 §5.6.2: ServerCertificate).
        return DeviceSecurityError(
            device_id, f"{action}: server certificate does not match the pinned certificate"
        )
    if text.startswith("No matching endpoints"):
        return DeviceSecurityError(
            device_id, f"{action}: the server offers no endpoint with this policy and mode ({text})"
        )
    return DeviceUnreachable(device_id, f"{action}: {text or type(exc).__name__}")
