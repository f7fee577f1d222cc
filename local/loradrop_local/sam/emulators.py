"""SAM's own emulators running what `sam build` made, in Lambda's arm64 container, against the local stack.

`sam local` reads a function's variables from the template and lets an env file override only those, so
the template declares `AWS_ENDPOINT_URL` (empty in AWS, where botocore ignores it) and the file written
here sets it, with every other variable, to the local stack's values: its AWS endpoint and resource names,
the simulator, and `start-api`'s webhook URL. The stack listens on the Docker bridge's gateway, the one
host address SAM's containers reach. SAM passes its own credentials into the containers (the stack's
administrator's here), so IAM is not enforced for them as it is for the stack's own workers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import yaml

from loradrop_local.aws.cloudformation import PROJECT_ROOT, load_template
from loradrop_local.aws.provision import REGION
from loradrop_local.aws.stack import LocalStack, StackOptions
from loradrop_local.sam.image import IMAGE, bridge_gateway, docker_ready, have_image

BUILD = PROJECT_ROOT / ".aws-sam" / "build"
TOOLS = PROJECT_ROOT / ".venv-tools" / "bin" / "sam"
READY_SECONDS = 180.0
WARM = ("--warm-containers", "LAZY")  # one container per function, kept between invocations, as Lambda keeps them
# Under arm64 emulation a cold start takes 10-20 s, and SAM's runtime emulator counts it in the first invocation's
# time (Lambda gives init a phase of its own), and a busy machine doubles it: a function is given at least this long
# here, in a copy of the built template beside it. Nothing else differs from what `sam build` made.
EMULATED_TIMEOUT_SECONDS = 300
EMULATED_TEMPLATE = BUILD / "emulated-template.yaml"
# `sam local invoke` posts the event to the container's runtime three times within 0.7 s. Under emulation the
# runtime can take longer to listen, and Docker's port proxy accepts the connection before it does: SAM then says
# this and waits out the function's timeout before it exits. The event never reached the handler (and every
# handler is idempotent, as Lambda's at-least-once delivery requires), so the invoke is tried again at once.
NO_RESPONSE = "No response from invoke container"
INVOKE_TRIES = 3  # beside the build's own: its code paths are relative


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sam_command() -> list[str]:
    return [str(TOOLS) if TOOLS.exists() else "sam"]


class SamEmulators:
    """`sam local start-lambda` (the functions, for the stack's pollers and schedule) and `start-api` (the
    webhook route, for the simulator), and `sam local invoke` for one event."""

    def __init__(self, state_dir: Path, lambda_port: int | None = None, api_port: int | None = None) -> None:
        self.state_dir = state_dir
        self.lambda_port = lambda_port or free_port()
        self.api_port = api_port or free_port()
        self.env_file = state_dir / "sam-env.json"
        self.log_file = state_dir / "sam.log"
        self._processes: list[subprocess.Popen[str]] = []
        self._log: IO[str] | None = None
        self._credentials: dict[str, str] = {}
        self._endpoint = ""

    @property
    def lambda_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.lambda_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def configure(self, stack: Any) -> Path:
        """Write the env file (each function's variables as the local stack gives them) and the template."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        variables = {logical_id: stack.function_environment(logical_id) for logical_id in stack.runtimes}
        self.env_file.write_text(json.dumps(variables, indent=2))
        self._credentials = dict(stack.credentials)
        self._endpoint = stack.endpoint
        template = load_template(BUILD / "template.yaml")
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Serverless::Function":
                properties = resource["Properties"]
                properties["Timeout"] = max(int(properties.get("Timeout", 3)), EMULATED_TIMEOUT_SECONDS)
        EMULATED_TEMPLATE.write_text(yaml.safe_dump(template, sort_keys=False))
        return self.env_file

    def arguments(self) -> list[str]:
        """What every `sam local` command here takes: the built template, the image, the env file."""
        return [
            "--template",
            str(EMULATED_TEMPLATE),
            "--invoke-image",
            IMAGE,
            "--skip-pull-image",
            "--env-vars",
            str(self.env_file),
            "--parameter-overrides",
            f"LocalEndpoint={self._endpoint}",
        ]

    def environment(self) -> dict[str, str]:
        """SAM's own process: the stack's credentials (SAM hands them to the containers), region, no telemetry."""
        return os.environ | self._credentials | {"AWS_DEFAULT_REGION": REGION, "SAM_CLI_TELEMETRY": "0"}

    def start(self) -> SamEmulators:
        self._log = self.log_file.open("a")
        for command, port in (("start-lambda", self.lambda_port), ("start-api", self.api_port)):
            self._processes.append(
                subprocess.Popen(
                    [
                        *sam_command(),
                        "local",
                        command,
                        *("--host", "127.0.0.1", "--port", str(port)),
                        *WARM,
                        *self.arguments(),
                    ],
                    cwd=PROJECT_ROOT,
                    env=self.environment(),
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
        for port in (self.lambda_port, self.api_port):
            self._wait_for(port)
        return self

    def _wait_for(self, port: int) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if any(process.poll() is not None for process in self._processes):
                raise RuntimeError(f"sam local stopped: see {self.log_file}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.5)
        raise TimeoutError(f"sam local did not listen on {port} within {READY_SECONDS:.0f} s: see {self.log_file}")

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._log is not None:
            self._log.close()
        # SAM removes its warm containers when it stops; any a crash left behind are removed here.
        listed = subprocess.run(
            ["docker", "ps", "-a", "--format", "{{.ID}} {{.Image}}"],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.splitlines()
        ours = [line.split()[0] for line in listed if " samcli/lambda-python:3.13-arm64" in line]
        if ours:
            subprocess.run(["docker", "rm", "-f", *ours], capture_output=True, check=False)  # noqa: S607

    def __enter__(self) -> SamEmulators:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def invoke(self, function: str, event: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        """`sam local invoke FUNCTION -e EVENT`, as a user runs it: a container of its own; the handler's answer."""
        event_file = self.state_dir / f"event-{function}-{time.monotonic_ns()}.json"
        event_file.write_text(json.dumps(event))
        try:
            for _ in range(INVOKE_TRIES):
                code, stdout, stderr = self._invoke_once(function, event_file, timeout)
                if NO_RESPONSE not in stderr:
                    break
        finally:
            event_file.unlink(missing_ok=True)
        last = [line for line in stdout.strip().splitlines() if line.startswith("{")]
        if code != 0 or not last:
            raise RuntimeError(f"sam local invoke {function} failed ({code}): {stderr[-2000:]}")
        answer: dict[str, Any] = json.loads(last[-1])
        return answer

    def _invoke_once(self, function: str, event_file: Path, timeout: float) -> tuple[int, str, str]:
        """One `sam local invoke`: its exit code, output and log; ended at once when SAM gives up on the runtime
        (it would otherwise wait out the function's whole timeout before exiting)."""
        process = subprocess.Popen(
            [*sam_command(), "local", "invoke", function, "--event", str(event_file), *self.arguments()],
            cwd=PROJECT_ROOT,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: list[str] = []

        def read_log() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                lines.append(line)
                if NO_RESPONSE in line:
                    process.terminate()

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        try:
            process.wait(timeout=timeout)
        finally:
            process.kill()
            reader.join(timeout=10)
        assert process.stdout is not None
        stdout, stderr = process.stdout.read(), "".join(lines)
        with self.log_file.open("a") as log:
            log.write(stderr + stdout)
        return process.returncode, stdout, stderr

    def handlers_run(self) -> Counter[str]:
        """How often SAM ran each handler, by its log ("Invoking submit_training.app.handler (python3.13)")."""
        text = self.log_file.read_text() if self.log_file.exists() else ""
        return Counter(
            line.split("Invoking ", 1)[1].split(" ", 1)[0] for line in text.splitlines() if "Invoking " in line
        )


@contextmanager
def stack_in_sam(options: StackOptions, state_dir: Path) -> Iterator[tuple[LocalStack, SamEmulators]]:
    """A local stack whose functions SAM's emulators run: the stack listens on the Docker bridge's gateway, its
    pollers and schedule invoke through `start-lambda`, the simulator's webhooks go to `start-api`."""
    emulators = SamEmulators(state_dir)
    options.bind_host = bridge_gateway()
    options.lambda_endpoint, options.api_url = emulators.lambda_endpoint, emulators.api_url
    options.simulator.webhook_timeout = max(options.simulator.webhook_timeout, 120.0)  # an emulated cold start
    with LocalStack(options) as stack:
        emulators.configure(stack)
        with emulators:
            yield stack, emulators


def sam_problem() -> str | None:
    """Why SAM's emulators cannot run here (and what to do), or None."""
    problem = docker_ready()
    if problem:
        return f"{problem}: `local/setup-docker.sh` (as root) installs Docker and arm64 emulation"
    if not have_image():
        return f"no {IMAGE} image: `make sam-image` (as root) builds it from Debian's and PyPI's packages"
    if not (BUILD / "template.yaml").exists():
        return "no `sam build` output: `make build`"
    return None
