"""What `sam build` produces (make test builds before it tests): code and layer with their bytecode, for
Lambda's arm64 Python 3.13. Without the bytecode every cold start compiles boto3 and the rest from source;
the layer carries botocore's models for the services the code calls, no others."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from loradrop_local.aws.cloudformation import PROJECT_ROOT

BUILD = PROJECT_ROOT / ".aws-sam" / "build"
FUNCTIONS = ["SubmitTrainingFunction", "ReceiveWebhookFunction", "StoreWeightsFunction", "ReconcileJobsFunction"]
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
        ["loradrop", "submit_training", "receive_webhook", "store_weights", "reconcile_jobs"]
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
            if name == "get_secret":
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
