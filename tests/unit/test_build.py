"""What `sam build` produces (make test builds before it tests): code and layer with their bytecode, for
Lambda's arm64 Python 3.13. Without the bytecode every cold start compiles boto3 and the rest from source;
the layer carries botocore's models and endpoints for the services the code calls, no others."""

from __future__ import annotations

import ast
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from loradrop_local.aws.cloudformation import PROJECT_ROOT

BUILD = PROJECT_ROOT / ".aws-sam" / "build"
FUNCTIONS = [
    "SubmitTrainingFunction",
    "ReceiveWebhookFunction",
    "StoreWeightsFunction",
    "ReconcileJobsFunction",
    "PublishEventsFunction",
]
pytestmark = pytest.mark.skipif(not BUILD.exists(), reason="not built (make test runs `sam build` first)")


def assert_compiled_unchecked(root: Path) -> int:
    sources = list(root.rglob("*.py"))
    assert sources
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        assert compiled.exists(), f"{source} has no bytecode"
        flags = int.from_bytes(compiled.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{compiled} is not an unchecked-hash .pyc (zip timestamps would invalidate it)"
    return len(sources)


def test_the_layer_holds_the_pins_built_for_arm64_with_their_bytecode() -> None:
    layer = BUILD / "DependenciesLayer" / "python"
    assert assert_compiled_unchecked(layer) > 500
    lines = (PROJECT_ROOT / "layers/deps/requirements.txt").read_text().splitlines()
    for requirement in filter(None, (line.split("#")[0].strip() for line in lines)):
        name, version = requirement.split("==")
        assert list(layer.glob(f"{name.replace('-', '_')}-{version}.dist-info")), requirement
    (extension,) = (layer / "pydantic_core").glob("_pydantic_core.*.so")
    assert "aarch64" in extension.name  # the template's arm64, not this machine's


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_ships_the_code_with_its_bytecode(function: str) -> None:
    built = BUILD / function
    assert sorted(p.name for p in built.iterdir()) == sorted(
        ["loradrop", "submit_training", "receive_webhook", "store_weights", "reconcile_jobs", "publish_events"]
    )
    shipped = assert_compiled_unchecked(built)
    assert shipped == len(list((PROJECT_ROOT / "functions").glob("*/*.py")))


def _listed_services() -> set[str]:
    text = (PROJECT_ROOT / "layers/deps/aws-services.txt").read_text()
    return {line.split("#")[0].strip() for line in text.splitlines()} - {""}


def _services_the_code_calls() -> set[str]:
    """Every `aws("…")` / `OnFirstUse("…")` in the functions, and Secrets Manager where Powertools fetches a
    secret: the services whose botocore models the layer must keep."""
    found = set()
    for source in (PROJECT_ROOT / "functions").rglob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in {"aws", "OnFirstUse", "client"} and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
            if name in ("get_secret", "SecretsProvider"):
                found.add("secretsmanager")
    return found


def test_the_layer_keeps_botocore_models_for_every_service_the_code_calls() -> None:
    assert _services_the_code_calls() == _listed_services() == {"dynamodb", "events", "s3", "secretsmanager", "sqs"}


def test_the_built_layer_makes_clients_for_the_listed_services_and_no_others() -> None:
    data = BUILD / "DependenciesLayer" / "python" / "botocore" / "data"
    assert {p.name for p in data.iterdir() if p.is_dir()} == _listed_services()
    script = (
        "import botocore.session, botocore.exceptions\n"
        "session = botocore.session.get_session()\n"
        f"for service in {sorted(_listed_services())!r}:\n"
        "    print(service, type(session.create_client(service, region_name='us-east-1')).__name__)\n"
        "try:\n    session.create_client('lambda', region_name='us-east-1')\n"
        "except botocore.exceptions.UnknownServiceError:\n    print('lambda unknown')\n"
    )
    run = subprocess.run(  # this interpreter; the built layer alone on its path (botocore is pure Python)
        [sys.executable, "-S", "-c", script],
        env={"PYTHONPATH": str(data.parent.parent), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.splitlines() == [
        "dynamodb DynamoDB",
        "events EventBridge",
        "s3 S3",
        "secretsmanager SecretsManager",
        "sqs SQS",
        "lambda unknown",
    ]


# One signed request per listed service and region, stopped before it is sent: where it would go and the
# region and service it is signed for.
SIGNED_REQUESTS = """
import botocore, botocore.session
class Stopped(Exception):
    pass
def stop(request, **_):
    authorization = request.headers["Authorization"]  # bytes for some services
    authorization = authorization.decode() if isinstance(authorization, bytes) else authorization
    scope = authorization.split("Credential=")[1].split(",")[0].split("/")[2:4]
    print(service, region, request.url.split("?")[0], *scope)
    raise Stopped
calls = {"s3": ("head_bucket", {"Bucket": "loradrop-weights"}), "dynamodb": ("list_tables", {}),
         "sqs": ("list_queues", {}), "events": ("list_event_buses", {}), "secretsmanager": ("list_secrets", {})}
print(botocore.__version__)
session = botocore.session.get_session()
for service, (operation, params) in sorted(calls.items()):
    for region in ["us-east-1", "eu-central-1", "ap-southeast-2", "cn-north-1", "us-gov-west-1", "us-iso-east-1"]:
        client = session.create_client(service, region_name=region)
        client.meta.events.register("before-send", stop)
        try:
            getattr(client, operation)(**params)
        except Stopped:
            pass
"""


def test_the_pruned_layer_sends_and_signs_each_request_as_stock_botocore_does() -> None:
    """endpoints.json in the layer keeps the listed services' entries alone: for those, nothing changes."""
    layer = BUILD / "DependenciesLayer" / "python"
    endpoints = json.loads((layer / "botocore" / "data" / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        assert set(partition["services"]) <= _listed_services(), partition["partition"]
    assert set(endpoints["partitions"][0]["services"]) == _listed_services()  # aws: all five

    def requests(*python: str, path: str) -> list[str]:
        env = {
            "PYTHONPATH": path,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
        }
        run = subprocess.run([*python, "-c", SIGNED_REQUESTS], env=env, capture_output=True, text=True, check=True)
        return run.stdout.splitlines()

    pruned = requests(sys.executable, "-S", path=str(layer))  # the built layer alone on the path
    stock = requests(sys.executable, path="")  # the dev environment's botocore: the same pin, unpruned
    assert pruned[0] == stock[0], "the layer and the dev environment must pin the same botocore"
    assert len(pruned) == 1 + 5 * 6
    assert "s3 cn-north-1 https://loradrop-weights.s3.cn-north-1.amazonaws.com.cn/ cn-north-1 s3" in stock
    assert pruned == stock


def test_the_layer_carries_certifis_roots_one_per_file_under_the_names_openssl_gives_them(tmp_path: Path) -> None:
    """loradrop.tls verifies against certifi/hashed (hash_certificates.py): the bundle's roots, every one
    and no other, each named as `openssl rehash` names it, so a handshake finds the one it needs."""
    certifi = BUILD / "DependenciesLayer" / "python" / "certifi"
    roots = set(ssl.create_default_context(cafile=certifi / "cacert.pem").get_ca_certs(binary_form=True))
    hashed = {path.name: ssl.PEM_cert_to_DER_cert(path.read_text()) for path in (certifi / "hashed").iterdir()}
    assert len(roots) > 100
    assert len(hashed) == len(roots)
    assert set(hashed.values()) == roots
    for number, root in enumerate(roots):
        (tmp_path / f"{number}.pem").write_text(ssl.DER_cert_to_PEM_cert(root))
    subprocess.run(["openssl", "rehash", str(tmp_path)], check=True)  # noqa: S607 - the machine's openssl
    by_openssl = {
        (link.name.split(".")[0], ssl.PEM_cert_to_DER_cert(link.read_text()))
        for link in tmp_path.iterdir()
        if link.is_symlink()
    }
    assert {(name.split(".")[0], root) for name, root in hashed.items()} == by_openssl  # .0, .1 aside


def test_on_the_layer_the_tls_context_reads_no_root_before_a_handshake() -> None:
    """The bundle costs ~17 ms to parse at init; the hashed directory costs nothing until a handshake. A
    pip-installed certifi (the dev environment's) has no hashed directory: the context parses the bundle."""
    script = (
        "import ssl\nfrom loradrop.tls import tls_context\ncontext = tls_context()\n"
        "print(len(context.get_ca_certs()), context.verify_mode == ssl.CERT_REQUIRED, context.check_hostname)"
    )
    path = f"{BUILD / 'DependenciesLayer' / 'python'}{os.pathsep}{BUILD / 'StoreWeightsFunction'}"
    on_the_layer = subprocess.run(
        [sys.executable, "-S", "-c", script], env={"PYTHONPATH": path}, capture_output=True, text=True, check=True
    )
    functions = {"PYTHONPATH": str(PROJECT_ROOT / "functions")}
    in_development = subprocess.run(
        [sys.executable, "-c", script], env=functions, capture_output=True, text=True, check=True
    )
    assert on_the_layer.stdout.split() == ["0", "True", "True"]
    assert int(in_development.stdout.split()[0]) > 100
    assert in_development.stdout.split()[1:] == ["True", "True"]
