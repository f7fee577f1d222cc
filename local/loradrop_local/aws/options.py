"""How the local stack runs: time compression, WaveSpeed (the simulator or the real API), what the functions
get beyond the template, and where SAM's emulators run them instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from loradrop_local.aws.cloudformation import TEMPLATE_PATH
from loradrop_local.simulator.model import SimulatorConfig

# Lambda scales a function up to the account's concurrency (1,000 by default); a 2-core machine cannot
# run that many workers, so locally a function without reserved concurrency has at most this many.
LOCAL_ACCOUNT_CONCURRENCY = 4


@dataclass
class StackOptions:
    """How the local stack runs. `time_scale` shortens the template's timeouts and schedules."""

    time_scale: float = 0.01
    reconcile_every: float | None = None  # default: the template's schedule x time_scale
    reconcile_after: float | None = None  # default: the template's parameter x time_scale
    wavespeed_api: str | None = None  # None: run the simulator
    wavespeed_api_key: str | None = None
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    webhook_secret_in_secret: bool = False  # else fetched from WaveSpeed, as when the secret has only a key
    state_dir: Path | None = None
    log_file: Path | None = None
    extra_environment: dict[str, str] = field(default_factory=dict)  # given to every function
    max_attempts: int | None = None
    parameters: dict[str, str] = field(default_factory=dict)  # template parameters, as `sam deploy` takes them
    run_reconciler: bool = True  # tests may invoke it themselves instead
    # Function timeouts (seconds) instead of the template's, e.g. a short StoreWeights timeout so a
    # copy's lease runs out within a test.
    function_timeouts: dict[str, float] = field(default_factory=dict)
    template: Path = TEMPLATE_PATH
    enforce_iam: bool = True
    # The most workers a function without reserved concurrency gets (Lambda's account limit, scaled down
    # to this machine); a throughput run raises it to what the template asks for.
    account_concurrency: int = LOCAL_ACCOUNT_CONCURRENCY
    # Under `sam local`: the address the stack's servers listen on (one SAM's containers reach: the Docker
    # bridge's gateway), SAM's `start-lambda` endpoint that runs the functions, and `start-api`'s URL for
    # the webhook route. None: the stack runs the functions and serves the route itself.
    bind_host: str = "127.0.0.1"
    lambda_endpoint: str | None = None
    api_url: str | None = None
