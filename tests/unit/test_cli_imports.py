"""The `loradrop` command a user runs against a deployed stack does not load the local stack: moto, the
WaveSpeed simulator and the development tooling are imported by `loradrop local` and `loradrop demo` alone."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

# Run in a fresh interpreter (this one has imported the local stack for other tests): the command's
# module, its help, and a command on a deployed stack that fails before reaching AWS.
COMMAND_ON_A_DEPLOYED_STACK = """
import contextlib, io, json, sys
from loradrop_cli import cli, commands
from loradrop_cli.job_client import CliError

def no_aws(name, region):
    raise CliError(f"stack {name}: not reached in this test")

commands.stack_target = no_aws
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    cli.main(["--help"])
code = cli.main(["--stack", "prod", "jobs"], io.StringIO())
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
LOCAL_STACK = ("moto", "loradrop_local", "loradrop_dev", "loradrop_cli.local_stack", "loradrop_cli.demo")
WHAT_IS_LOADED = "import json, sys; import {module}; print(json.dumps({{'code': 0, 'modules': sorted(sys.modules)}}))"


def run(code: str) -> tuple[dict[str, Any], str]:
    """The last line the code printed (JSON), and what it wrote to stderr."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


def of_the_local_stack(modules: list[str]) -> list[str]:
    return [name for name in modules if any(name == p or name.startswith(f"{p}.") for p in LOCAL_STACK)]


def test_the_command_on_a_deployed_stack_imports_no_local_stack() -> None:
    # Given a fresh interpreter, When it imports the command, shows its help and runs `--stack prod jobs`
    answer, errors = run(COMMAND_ON_A_DEPLOYED_STACK)
    # Then the command ran as far as reaching the stack (stopped there: no AWS here)
    assert answer["code"] == 2
    assert "stack prod: not reached in this test" in errors
    # And nothing of the local stack is loaded
    assert of_the_local_stack(answer["modules"]) == []


def test_loradrop_local_does_import_the_local_stack() -> None:
    # Given the module behind `loradrop local` (without this, the check above could pass by accident)
    answer, _ = run(WHAT_IS_LOADED.format(module="loradrop_cli.local_stack"))
    # Then moto and the local stack are loaded
    found = of_the_local_stack(answer["modules"])
    assert "loradrop_local.aws.stack" in found
    assert any(name.startswith("moto.") for name in found)
