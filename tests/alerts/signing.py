"""Sign a CAP message at test time with a throw-away RSA key and a self-signed certificate (XML-DSig, enveloped)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod
from signxml.exceptions import SignXMLException
from signxml.signer import XMLSigner
from signxml.verifier import XMLVerifier


@dataclass(frozen=True)
class ThrowAwayKey:
    key_pem: bytes
    cert_pem: str


def make_key(common_name: str = "Tocsin test signer") -> ThrowAwayKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return ThrowAwayKey(key_pem=key_pem, cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"))


def sign(data: bytes, key: ThrowAwayKey) -> bytes:
    """The message with an enveloped `ds:Signature` as the last child of `<alert>`, as CAP 1.2 places it."""
    root = etree.fromstring(data, parser=etree.XMLParser(remove_blank_text=True, resolve_entities=False))
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloped,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
    )
    signed = signer.sign(root, key=key.key_pem, cert=key.cert_pem)
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def signature_holds(data: bytes, key: ThrowAwayKey) -> bool:
    """Whether the bytes still carry a valid signature by this key (used to show an original was kept verbatim)."""
    try:
        XMLVerifier().verify(data, x509_cert=key.cert_pem)
    except SignXMLException:
        return False
    return True
