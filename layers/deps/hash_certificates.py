"""Writes a PEM bundle (certifi's, in the built layer: the Makefile runs it) as OpenSSL's hashed certificate
directory, what `openssl rehash` makes: one certificate per file named `<subject hash>.<n>`. A TLS context
given `capath=` that directory reads a root only when a handshake needs it; given the bundle, it parses all
of them (certifi's ~120: ~17 ms CPU of StoreWeights' init, docs/benchmarks.md). The certificates are the
bundle's, every one and no other (tests/unit/test_build.py compares the two and the names with openssl's).

The hash is OpenSSL's X509_NAME_hash: the first four bytes, little-endian, of the SHA-1 of the subject's
canonical encoding (x509_name_canon in OpenSSL's crypto/x509/x_name.c): each RDN's SET, without the Name's
outer SEQUENCE, with every text value as a UTF8String, ASCII-lowercased, its whitespace trimmed and runs
of it made one space."""

from __future__ import annotations

import hashlib
import re
import ssl
import sys
from pathlib import Path

_SEQUENCE, _SET, _UTF8_STRING = 0x30, 0x31, 0x0C
# The string types OpenSSL canonicalizes, with how their bytes map to characters (the others are copied).
_TEXT = {
    0x0C: "utf-8",  # UTF8String
    0x13: "latin-1",  # PrintableString
    0x14: "latin-1",  # T61String: OpenSSL reads it one byte per character
    0x16: "latin-1",  # IA5String
    0x1A: "latin-1",  # VisibleString
    0x1C: "utf-32-be",  # UniversalString
    0x1E: "utf-16-be",  # BMPString
}
_SPACE = b" \t\n\v\f\r"  # what OpenSSL's ossl_isspace counts
_SPACE_RUN = re.compile(b"[" + re.escape(_SPACE) + b"]+")


def _element(der: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at `at`: its tag, where its content starts and where it ends."""
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[at : at + size], "big")
        at += size
    return tag, at, at + length


def _encode(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _subject(certificate: bytes) -> bytes:
    """The content of the certificate's subject Name: its RDNs, one SET after another."""
    _, tbs, _ = _element(certificate, _element(certificate, 0)[1])  # Certificate → tbsCertificate
    tag, _, end = _element(certificate, tbs)
    at = end if tag == 0xA0 else tbs  # the optional [0] version
    for _ in range(4):  # serialNumber, signature, issuer, validity
        at = _element(certificate, at)[2]
    _, start, end = _element(certificate, at)
    return certificate[start:end]


def _canonical_value(der: bytes, at: int) -> bytes:
    tag, start, end = _element(der, at)
    if tag not in _TEXT:
        return der[at:end]
    text = der[start:end].decode(_TEXT[tag]).encode("utf-8").strip(_SPACE)
    return _encode(_UTF8_STRING, _SPACE_RUN.sub(b" ", text).lower())  # lower(): ASCII only


def subject_hash(certificate: bytes) -> str:
    name, canonical, at = _subject(certificate), b"", 0
    while at < len(name):
        _, start, end = _element(name, at)  # one RDN: a SET of (type, value) SEQUENCEs
        entries = []
        while start < end:
            _, inner, entry_end = _element(name, start)
            oid_end = _element(name, inner)[2]
            entries.append(_encode(_SEQUENCE, name[inner:oid_end] + _canonical_value(name, oid_end)))
            start = entry_end
        canonical += _encode(_SET, b"".join(sorted(entries)))  # DER orders a SET's members by their bytes
        at = end
    return f"{int.from_bytes(hashlib.sha1(canonical).digest()[:4], 'little'):08x}"  # noqa: S324 - OpenSSL's name hash


def write_hashed_directory(bundle: Path, directory: Path) -> None:
    """Writes each distinct certificate of `bundle` into `directory`."""
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", bundle.read_text(), re.DOTALL)
    certificates = list(dict.fromkeys(ssl.PEM_cert_to_DER_cert(block) for block in blocks))
    if not certificates:
        sys.exit(f"{bundle} holds no certificate")
    directory.mkdir(parents=True, exist_ok=True)
    taken: dict[str, int] = {}
    for certificate in certificates:
        name = subject_hash(certificate)
        serial = taken[name] = taken.get(name, -1) + 1  # roots that share a subject (or its hash): .0, .1, …
        (directory / f"{name}.{serial}").write_text(ssl.DER_cert_to_PEM_cert(certificate))


if __name__ == "__main__":
    write_hashed_directory(Path(sys.argv[1]), Path(sys.argv[2]))
