"""Secure channels: Basic256Sha256 with Sign or SignAndEncrypt, a trust list for server
certificates, and credentials that never travel on the command line."""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from transferline.errors import TransferlineError

POLICIES = ("None", "Basic256Sha256")
MODES = ("None", "Sign", "SignAndEncrypt")
PASSWORD_ENV = "TRANSFERLINE_OPCUA_PASSWORD"


class OpcUaError(TransferlineError):
    """An OPC UA connection, security or address-space problem, naming the endpoint or node."""


@dataclass
class Security:
    """How to open the secure channel and session.

    ``trust`` lists server certificate files or folders of them (DER or PEM); a server whose
    certificate is in none of them is refused.
    """

    policy: str = "None"
    mode: str = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    trust: list[Path] = field(default_factory=list)
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"security policy {self.policy!r}: use one of {', '.join(POLICIES)}")
        if self.mode not in MODES:
            raise ValueError(f"security mode {self.mode!r}: use one of {', '.join(MODES)}")
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError(f"security policy {self.policy} needs mode Sign or SignAndEncrypt, "
                             "and mode None needs policy None")
        if self.policy != "None" and not (self.certificate and self.private_key):
            raise ValueError(f"security policy {self.policy} needs a client certificate and key (--cert, --key)")


def read_password(env: str | None = PASSWORD_ENV, file: str | os.PathLike | None = None) -> str | None:
    """The password from ``file`` (first line) if given, else from environment variable ``env``."""
    if file:
        try:
            text = Path(file).read_text()
        except OSError as exc:
            raise OpcUaError(f"cannot read the password file {file}: {exc.strerror}") from None
        return text.splitlines()[0] if text else ""
    return os.environ.get(env) if env else None


def thumbprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def trusted_thumbprints(locations: list[Path]) -> set[str]:
    """SHA-256 thumbprints of every certificate found in the given files and folders."""
    from asyncua.crypto import uacrypto
    from cryptography.hazmat.primitives.serialization import Encoding

    out = set()
    for location in locations:
        files = sorted(p for p in location.iterdir() if p.is_file()) if location.is_dir() else [location]
        for path in files:
            try:
                data = path.read_bytes()
                cert = uacrypto.x509_from_der(data) if not data.startswith(b"-----") else \
                    uacrypto.x509.load_pem_x509_certificate(data)
            except (OSError, ValueError) as exc:
                raise OpcUaError(f"trust list: {path} is not a readable certificate ({exc})") from None
            out.add(thumbprint(cert.public_bytes(Encoding.DER)))
    return out


async def apply_security(client, security: Security, endpoint: str) -> None:
    """Configures ``client`` (an asyncua Client) before connecting; refuses untrusted servers."""
    from asyncua import ua
    from asyncua.crypto import security_policies, uacrypto

    if security.username:
        client.set_user(security.username)
        if security.password is not None:
            client.set_password(security.password)
    if security.policy == "None":
        return
    try:
        endpoints = await client.connect_and_get_server_endpoints()
    except (OSError, TimeoutError) as exc:
        raise OpcUaError(f"cannot reach {endpoint}: {exc}") from None
    policy = getattr(security_policies, f"SecurityPolicy{security.policy}")
    mode = getattr(ua.MessageSecurityMode, security.mode)
    offered = [e for e in endpoints if e.SecurityPolicyUri == policy.URI and e.SecurityMode == mode]
    if not offered:
        names = sorted({f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]}/{e.SecurityMode.name}" for e in endpoints})
        raise OpcUaError(f"{endpoint} offers no {security.policy}/{security.mode} endpoint "
                         f"(it offers {', '.join(names)})")
    server_der = offered[0].ServerCertificate
    cert = uacrypto.x509_from_der(server_der)
    from cryptography.hazmat.primitives.serialization import Encoding

    der = cert.public_bytes(Encoding.DER)
    if thumbprint(der) not in trusted_thumbprints(security.trust):
        raise OpcUaError(f"the server certificate of {endpoint} ({cert.subject.rfc4514_string()}, sha256 "
                         f"{thumbprint(der)[:16]}...) is not in the trust list; pass --trust FILE with its "
                         "certificate once you have checked it")
    client_cert = await uacrypto.load_certificate(str(security.certificate))
    uris = _certificate_uris(client_cert)
    if uris:
        client.application_uri = uris[0]
    await client.set_security(policy, str(security.certificate), str(security.private_key),
                              server_certificate=der, mode=mode)


def _certificate_uris(cert) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return san.value.get_values_for_type(x509.UniformResourceIdentifier)


async def make_certificate(key_file: Path, cert_file: Path, app_uri: str, *, server: bool) -> None:
    """Creates a self-signed application certificate (DER) and key (PEM) unless both exist."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key_file.parent.mkdir(parents=True, exist_ok=True)
    use = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    await setup_self_signed_certificate(key_file, cert_file, app_uri, socket.gethostname(), use,
                                        {"commonName": "transferline " + ("server" if server else "client")})
