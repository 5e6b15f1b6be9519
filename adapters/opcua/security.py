"""SignAndEncrypt for one asyncua ``Client``: a provisioned server certificate, no TOFU.

Rules (docs/reference/reliability.md §4.2; OPC 10000-2 §6 trust model, OPC 10000-4 §6.1 certificate
validation):

* Only SignAndEncrypt, only the policies :class:`~gateway.config.OpcUaSecurity` offers
  (Aes256_Sha256_RsaPss, Aes128_Sha256_RsaOaep, Basic256Sha256). Nothing here ever builds
  a ``SecurityPolicyNone`` client for a session; a security failure is a
  :class:`~gateway.core.errors.DeviceSecurityError`, retried slowly, never downgraded.
* ``Client.set_security`` is always given the server certificate. asyncua would otherwise
  fetch it over an unauthenticated channel and use it unchecked (trust on first use).
  With ``server_certificate`` configured that file is the pin: the secure channel is
  encrypted for it, so a server holding another key cannot open the channel at all, and
  asyncua compares it with the certificate in CreateSessionResponse.
* With only ``trusted_certificates`` configured, the server certificate is taken from the
  server's endpoint description (GetEndpoints, the Discovery service of OPC 10000-4 §5.4.4,
  which runs without a session on an unsecured channel; no data is read and no session is
  created there) and validated against the trust list *before* it is used. An untrusted one
  is refused: that is the difference from trust on first use.
* ``client.certificate_validator`` is asyncua's ``CertificateValidator`` with
  ``TRUSTED_VALIDATION | PEER_SERVER`` (validity period, application URI in the SAN, key
  usage, serverAuth, trust chain and CRL). Without a trust list the pin is the trust anchor
  and everything else is still checked.
* The gateway's own certificate is checked before connecting: validity period and the
  application URI in its subjectAltName (OPC 10000-6 §6.2.2), and that the key belongs to it.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from adapters.opcua.status import UA_ERRORS, status_name, translate_error
from gateway.config import OpcUaDevice, OpcUaSecurity
from gateway.core.errors import DeviceSecurityError

__all__ = ["POLICIES", "SecureChannelSetup", "configure_security", "thumbprint"]

POLICIES: Final[dict[str, type[security_policies.SecurityPolicy]]] = {
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
}
"""Config policy name -> asyncua policy class (OPC 10000-7 security policy profiles)."""

_VALIDATION: Final = (
    CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_SERVER
)


def thumbprint(cert: x509.Certificate) -> str:
    """SHA-1 thumbprint as OPC UA tools show it (OPC 10000-6 §6.7.2.3 uses SHA-1 too)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


class RecordingValidator:
    """asyncua's certificate validator, remembering the status it refused the server with.

    A ``BadCertificate...`` error during CreateSession can mean *we* refused the server's
    certificate or *the server* refused ours; this tells the two apart for the message.
    """

    def __init__(self, inner: CertificateValidator) -> None:
        self._inner = inner
        self.refused: int | None = None

    async def __call__(
        self, cert: x509.Certificate, app_description: ua.ApplicationDescription
    ) -> None:
        """Validate ``cert`` for the server described by ``app_description``."""
        try:
            await self._inner.validate(cert, app_description)
        except ServiceError as exc:
            self.refused = int(exc.code)
            raise


@dataclass(frozen=True, slots=True)
class SecureChannelSetup:
    """What :func:`configure_security` set up, for error messages."""

    policy: str
    server_thumbprint: str
    pinned: bool
    """True when the server certificate is the configured pin, False when discovered."""
    validator: RecordingValidator


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _read(path: Path) -> bytes:
    return await asyncio.to_thread(path.read_bytes)


def _parse_certificate(data: bytes) -> x509.Certificate:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(_first_der(data))


def _first_der(data: bytes) -> bytes:
    """The first certificate of a DER blob that may hold a whole chain (X.690 §8.1.3)."""
    if len(data) < 2 or data[0] != 0x30:
        return data
    length = data[1]
    if length < 0x80:
        return data[: 2 + length]
    count = length & 0x7F
    body = int.from_bytes(data[2 : 2 + count], "big")
    return data[: 2 + count + body]


async def _load_certificate(device_id: str, path: Path, what: str) -> x509.Certificate:
    try:
        return _parse_certificate(await _read(path))
    except OSError as exc:
        raise DeviceSecurityError(
            device_id, f"cannot read the {what} {path}: {exc.strerror or exc}"
        ) from exc
    except ValueError as exc:
        raise DeviceSecurityError(
            device_id, f"the {what} {path} is not a DER or PEM certificate"
        ) from exc


async def _load_key(device_id: str, path: Path) -> PrivateKeyTypes:
    try:
        data = await _read(path)
    except OSError as exc:
        raise DeviceSecurityError(
            device_id, f"cannot read the private key {path}: {exc.strerror or exc}"
        ) from exc
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DeviceSecurityError(
            device_id, f"the private key {path} is unreadable or password-protected"
        ) from exc
    return key


def _check_period(device_id: str, cert: x509.Certificate, what: str) -> None:
    # OPC 10000-4 §6.1.3 "Validity Period": BadCertificateTimeInvalid.
    now = _utcnow()
    if cert.not_valid_after_utc < now:
        raise DeviceSecurityError(
            device_id,
            f"the {what} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC "
            "(BadCertificateTimeInvalid)",
        )
    if cert.not_valid_before_utc > now:
        raise DeviceSecurityError(
            device_id,
            f"the {what} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            "(BadCertificateTimeInvalid); is the clock set?",
        )


def _check_own_certificate(
    device_id: str, cert: x509.Certificate, key: PrivateKeyTypes, security: OpcUaSecurity
) -> None:
    _check_period(device_id, cert, f"gateway certificate {security.certificate}")
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    # OPC 10000-6 §6.2.2: the ApplicationUri must be in the subjectAltName.
    if security.application_uri not in uris:
        raise DeviceSecurityError(
            device_id,
            f"the gateway certificate's subjectAltName URIs {uris} do not contain "
            f"application_uri {security.application_uri!r} (BadCertificateUriInvalid)",
        )
    public = cert.public_key()
    if not isinstance(key, rsa.RSAPrivateKey) or not isinstance(public, rsa.RSAPublicKey):
        raise DeviceSecurityError(device_id, "the gateway certificate and key must be RSA")
    if key.public_key().public_numbers() != public.public_numbers():
        raise DeviceSecurityError(
            device_id,
            f"the private key {security.private_key} does not belong to the certificate "
            f"{security.certificate}",
        )


async def _trust_store(device_id: str, directory: Path) -> TrustStore:
    crl = directory / "crl"
    crl_dirs = [crl] if await asyncio.to_thread(crl.is_dir) else []
    store = TrustStore([directory], crl_dirs)
    try:
        await store.load()
    except (OSError, ValueError) as exc:
        raise DeviceSecurityError(
            device_id, f"cannot load the trusted certificates in {directory}: {exc}"
        ) from exc
    return store


async def _discover_server_certificate(
    device: OpcUaDevice, policy_uri: str, validator: RecordingValidator
) -> x509.Certificate:
    """The server's certificate from its endpoints (GetEndpoints), validated before use."""
    probe = Client(device.endpoint, timeout=device.timeout_s)
    try:
        endpoints = await probe.connect_and_get_server_endpoints()
    except UA_ERRORS as exc:
        raise translate_error(device.id, exc, "GetEndpoints") from exc
    for endpoint in endpoints:
        if (
            endpoint.SecurityPolicyUri == policy_uri
            and endpoint.SecurityMode == ua.MessageSecurityMode.SignAndEncrypt
        ):
            try:
                cert = _parse_certificate(bytes(endpoint.ServerCertificate or b""))
            except ValueError as exc:
                raise DeviceSecurityError(
                    device.id, "the server's endpoint carries no readable certificate"
                ) from exc
            try:
                await validator(cert, endpoint.Server)
            except ServiceError as exc:
                name = status_name(int(exc.code))
                raise DeviceSecurityError(
                    device.id,
                    f"the server certificate (SHA-1 {thumbprint(cert)}) fails validation "
                    f"against trusted_certificates: {name}",
                ) from exc
            return cert
    raise DeviceSecurityError(
        device.id, f"the server offers no SignAndEncrypt endpoint with policy {policy_uri}"
    )


async def configure_security(client: Client, device: OpcUaDevice) -> SecureChannelSetup:
    """Make ``client`` use SignAndEncrypt with a validated, provisioned server certificate.

    Args:
        client: a fresh, unconnected asyncua ``Client``.
        device: the device; ``device.security`` must be set.

    Raises:
        DeviceSecurityError: a certificate or key is unreadable, expired, for another
            application URI, or (trust-list mode) the server's certificate is not trusted.
        DeviceUnreachable: trust-list mode and the server's endpoints could not be read.
    """
    security = device.security
    if security is None:
        raise ValueError("configure_security needs device.security")
    policy = POLICIES[security.policy]
    own = await _load_certificate(device.id, security.certificate, "gateway certificate")
    key = await _load_key(device.id, security.private_key)
    _check_own_certificate(device.id, own, key, security)

    store = None
    if security.trusted_certificates is not None:
        store = await _trust_store(device.id, security.trusted_certificates)
    validator = RecordingValidator(CertificateValidator(_VALIDATION, store))

    if security.server_certificate is not None:
        server = await _load_certificate(
            device.id, security.server_certificate, "pinned server certificate"
        )
        _check_period(device.id, server, f"pinned server certificate {security.server_certificate}")
        pinned = True
    else:
        server = await _discover_server_certificate(device, policy.URI, validator)
        pinned = False

    client.application_uri = security.application_uri
    client.certificate_validator = validator
    der = serialization.Encoding.DER
    # asyncua tells PEM from DER by file extension only; hand it DER bytes it can't misread.
    key_der = key.private_bytes(
        der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        await client.set_security(
            policy,
            certificate=own.public_bytes(der),
            private_key=key_der,
            server_certificate=server.public_bytes(der),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )
    except UA_ERRORS as exc:
        raise DeviceSecurityError(device.id, f"cannot set up {security.policy}: {exc}") from exc
    return SecureChannelSetup(
        policy=security.policy,
        server_thumbprint=thumbprint(server),
        pinned=pinned,
        validator=validator,
    )
