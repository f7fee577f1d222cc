"""What `sam build` produces (make test builds before it tests): code and layer with their bytecode, for
Lambda's arm64 Python 3.13. Without the bytecode every cold start compiles boto3 and the rest from source."""

from __future__ import annotations

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
