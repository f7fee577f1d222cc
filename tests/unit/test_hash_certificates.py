"""layers/deps/hash_certificates.py names each root as OpenSSL looks it up: a handshake verified against the
directory it writes finds its root only under the right hash. The names exercise every rule of OpenSSL's
canonical form (case, whitespace, each string type, an RDN with two values)."""

from __future__ import annotations

import datetime
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from loradrop_local.aws.cloudformation import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "layers" / "deps" / "hash_certificates.py"
CN, ORG, UNIT, EMAIL = (
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.EMAIL_ADDRESS,
)
CA_KEY_USAGE = x509.KeyUsage(  # what Python's strict verification asks of a root
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _rdn(*values: tuple[x509.ObjectIdentifier, str, _ASN1Type]) -> x509.RelativeDistinguishedName:
    return x509.RelativeDistinguishedName([x509.NameAttribute(oid, text, _type=kind) for oid, text, kind in values])


ROOT_NAMES = {
    "printable, case and whitespace": x509.Name(
        [
            _rdn((ORG, "  LoraDrop   Test Roots ", _ASN1Type.PrintableString)),
            _rdn((CN, "ROOT  A", _ASN1Type.PrintableString)),
        ]
    ),
    "utf-8 beyond ascii": x509.Name([_rdn((CN, "Zürich \t ÉCOLE Root\n", _ASN1Type.UTF8String))]),
    "bmp and universal": x509.Name(
        [_rdn((ORG, "Ünïcode  Org", _ASN1Type.BMPString)), _rdn((CN, "Wide Root", _ASN1Type.UniversalString))]
    ),
    "t61, numeric and ia5": x509.Name(
        [
            _rdn((ORG, "Caf\u00e9 Roots", _ASN1Type.T61String)),
            _rdn((UNIT, " 12  34", _ASN1Type.NumericString)),  # not text to OpenSSL: hashed as it is
            _rdn((EMAIL, "Roots@LoraDrop.example", _ASN1Type.IA5String)),
        ]
    ),
    "one rdn, two values": x509.Name(
        [_rdn((UNIT, "Zeta Unit", _ASN1Type.UTF8String), (ORG, "alpha   ORG  ", _ASN1Type.PrintableString))]
    ),
}


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(CA_KEY_USAGE, critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(signer, hashes.SHA256())


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=ROOT_NAMES, scope="module")
def https_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, bytes]]:
    """A localhost HTTPS server whose certificate a root of that name signed: its URL and the root's PEM."""
    root_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _certificate(ROOT_NAMES[request.param], ROOT_NAMES[request.param], root_key, root_key, ca=True)
    server = _certificate(
        x509.Name([_rdn((CN, "localhost", _ASN1Type.UTF8String))]), root.subject, server_key, root_key, ca=False
    )
    files = tmp_path_factory.mktemp("server")
    (files / "cert.pem").write_bytes(_pem(server))
    key = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (files / "key.pem").write_bytes(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files / "cert.pem", files / "key.pem")
    httpd = ThreadingHTTPServer(("localhost", 0), _Hello)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://localhost:{httpd.server_address[1]}/", _pem(root)
    httpd.shutdown()
    httpd.server_close()


def _run_script(tmp_path: Path, bundle: bytes) -> subprocess.CompletedProcess[str]:
    """hash_certificates.py as the layer's Makefile runs it: `bundle` in, tmp_path/hashed out."""
    (tmp_path / "bundle.pem").write_bytes(bundle)
    command = [sys.executable, SCRIPT, tmp_path / "bundle.pem", tmp_path / "hashed"]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _hashed(tmp_path: Path, *roots: bytes) -> Path:
    result = _run_script(tmp_path, b"".join(roots))
    assert result.returncode == 0, result.stderr
    return tmp_path / "hashed"


def _other_root() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([_rdn((CN, "Unrelated Root", _ASN1Type.UTF8String))])
    return _pem(_certificate(name, name, key, key, ca=True))


def test_a_handshake_finds_its_root_in_the_hashed_directory(https_server: tuple[str, bytes], tmp_path: Path) -> None:
    url, root = https_server
    directory = _hashed(tmp_path, _other_root(), root, root)  # a repeated root is written once
    assert len(list(directory.iterdir())) == 2
    context = ssl.create_default_context(capath=directory)
    assert context.get_ca_certs() == []  # nothing read before a handshake asks

    response = httpx.get(url, verify=context)

    assert (response.status_code, response.text) == (200, "hello")
    assert len(context.get_ca_certs()) == 1  # the handshake read its root alone


def test_without_its_root_the_handshake_fails(https_server: tuple[str, bytes], tmp_path: Path) -> None:
    url, _ = https_server
    context = ssl.create_default_context(capath=_hashed(tmp_path, _other_root()))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url, verify=context)


def test_a_bundle_without_certificates_stops_the_build(tmp_path: Path) -> None:
    result = _run_script(tmp_path, b"not a certificate\n")
    assert result.returncode == 1
    assert "holds no certificate" in result.stderr
