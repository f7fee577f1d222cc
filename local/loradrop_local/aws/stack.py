"""The local stack: loradrop without AWS or Docker.

template.yaml is translated as SAM would deploy it and provisioned in moto's server (S3, SQS, DynamoDB,
Secrets Manager, EventBridge, IAM over real HTTP). Each function runs in worker processes of its own
with its own environment and its execution role's credentials, and moto enforces the role's policies.
Queue pollers play Lambda's SQS event source, an HTTP front plays API Gateway, a thread plays the
schedule, and the WaveSpeed simulator plays WaveSpeed (or the real API is used when asked).

This module is the stack's lifecycle; how it runs is `options.StackOptions`, and what callers do with it
once it runs (upload, wait for a job, drain queues) is `probes.StackProbes`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from loradrop_local.aws import iam
from loradrop_local.aws.cloudformation import Resolver, translate
from loradrop_local.aws.http_api import api_gateway_handler
from loradrop_local.aws.lambda_runtime import FunctionConfig, FunctionError, FunctionRuntime
from loradrop_local.aws.moto_front import MotoFront, RequestHooks, make_dynamodb_atomic
from loradrop_local.aws.options import StackOptions
from loradrop_local.aws.pollers import poll_queue, poll_stream, run_every
from loradrop_local.aws.probes import StackProbes
from loradrop_local.aws.provision import ACCOUNT, REGION, Deployment, Provisioner, schedule_seconds
from loradrop_local.aws.remote_runtime import RemoteRuntime
from loradrop_local.loopback import LoopbackHTTPServer
from loradrop_local.simulator.server import Simulator

# Pollers of an SQS event source without MaximumConcurrency (Lambda starts with 5 and scales; locally 2).
SQS_DEFAULT_POLLERS = 2
ABSENCE_CONFIRM_SECONDS = 300  # the reconciler's default (settings.ReconcilePart), compressed like the rest
SECRET_NAME = "loradrop/wavespeed"
PROFILE = "loradrop-local"  # the AWS CLI profile `loradrop local` writes to its state directory


class LocalStack(StackProbes):
    """The stack's lifecycle (start, stop), its clients and invocations; what callers do with it once it runs
    (upload, read and wait for jobs, drain queues) is in `StackProbes`."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.stack_name = f"loradrop-local-{uuid.uuid4().hex[:8]}"
        self.simulator: Simulator | None = None
        self.deployment = Deployment(self.stack_name)
        self.runtimes: dict[str, FunctionRuntime | RemoteRuntime] = {}
        self.aws_requests = RequestHooks()  # fault injection on the functions' AWS calls
        self.handler_errors: list[tuple[str, str]] = []
        self.credentials: dict[str, str] = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._moto: MotoFront | None = None
        self._webhook_server: ThreadingHTTPServer | None = None
        self._saved_environ: dict[str, str] = {}
        self._cleanup = ExitStack()
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._clients_lock = threading.Lock()

    # ----- lifecycle -----
    def start(self) -> LocalStack:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        make_dynamodb_atomic()
        iam.install()
        self.aws_requests.kill = self._kill_worker
        self._moto = MotoFront(self.aws_requests, self.options.bind_host)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._set_aws_environment()
        if self.options.wavespeed_api is None:
            self.simulator = Simulator(self.options.simulator, host=self.options.bind_host).start()
        self._provision()
        self._start_webhook_server()
        self._create_secret()
        self._create_event_subscriber()
        admin = iam.admin_credentials(self.client("iam"), f"{self.stack_name}-admin")
        roles = {
            spec.logical_id: iam.role_credentials(self.client("sts"), spec.role_arn, spec.name)
            for spec in self.deployment.functions.values()
        }
        self.credentials = admin
        self.aws_requests.enforce_iam = self.options.enforce_iam
        self._start_runtimes(roles)
        self._start_pollers(roles)
        if self.options.state_dir is not None:
            self.write_state(self.options.state_dir)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._webhook_server is not None:
            self._webhook_server.shutdown()
            self._webhook_server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        for runtime in self.runtimes.values():
            runtime.close()
        if self.simulator is not None:
            self.simulator.stop()
        self._cleanup.close()
        if self._moto is not None:
            self._moto.stop()
        for key in list(os.environ):
            if key not in self._saved_environ:
                del os.environ[key]
        os.environ.update(self._saved_environ)

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- clients for callers (tests, CLI) -----
    def client(self, service: str, credentials: dict[str, str] | None = None) -> Any:
        """A client with the stack's admin credentials (or the given ones), made once per service and
        credentials: a caller polling the stack must not open a connection pool per call."""
        chosen = credentials or self.credentials
        cache_key = (service, chosen["AWS_ACCESS_KEY_ID"], chosen.get("AWS_SESSION_TOKEN"))
        with self._clients_lock:
            if cache_key not in self._clients:
                self._clients[cache_key] = boto3.client(
                    service,
                    endpoint_url=self.endpoint,
                    region_name=REGION,
                    aws_access_key_id=chosen["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=chosen["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=chosen.get("AWS_SESSION_TOKEN"),
                    config=Config(signature_version="s3v4") if service == "s3" else None,
                )
            return self._clients[cache_key]

    @property
    def wavespeed_api(self) -> str:
        return self.options.wavespeed_api or (self.simulator.url if self.simulator else "")

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """A function's variables as its workers get them (credentials left out)."""
        hidden = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
        environment = self.runtimes[logical_id].config.environment
        return {key: value for key, value in environment.items() if key not in hidden}

    # ----- setup -----
    def _set_aws_environment(self) -> None:
        """Only what moto itself reads: callers get clients from `client()`, functions their own variables."""
        self._saved_environ = dict(os.environ)
        # The roles attach AWS managed policies (AWSLambdaBasicExecutionRole, ...): moto must know them.
        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"

    def _scaled(self, seconds: float) -> float:
        return seconds * self.options.time_scale

    def _parameters(self, template: dict[str, Any]) -> dict[str, str]:
        """What a person would pass to `sam deploy --parameter-overrides`, with time compressed."""
        defaults = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        output_hosts = defaults["OutputHosts"] + (f",{self.simulator.url}" if self.simulator else "")
        reconcile_after = self.options.reconcile_after
        if reconcile_after is None:
            reconcile_after = self._scaled(float(defaults["ReconcileAfterSeconds"]))
        parameters = {
            "Stage": "local",
            "WaveSpeedApiBase": self.wavespeed_api,
            "WaveSpeedSecretName": SECRET_NAME,
            "OutputHosts": output_hosts,
            "ReconcileAfterSeconds": str(round(reconcile_after)),
            "UncertainGraceSeconds": str(round(self._scaled(float(defaults["UncertainGraceSeconds"])))),
            "SettleDeadlineSeconds": str(round(self._scaled(float(defaults["SettleDeadlineSeconds"])))),
        }
        if self.options.max_attempts is not None:
            parameters["MaxAttempts"] = str(self.options.max_attempts)
        return parameters | self.options.parameters

    def _provision(self) -> None:
        template = translate(self.options.template, REGION)
        stack_uuid = str(uuid.uuid4())
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{self.stack_name}/{stack_uuid}",
        }
        resolver = Resolver(template, self._parameters(template), pseudo)
        self.deployment = Provisioner(template, resolver, self.client, self.stack_name, self.options.time_scale).run()
        if self.deployment.unknown:
            raise RuntimeError(f"the local stack cannot create these resources: {self.deployment.unknown}")
        # The API's execute-api domain is served by the local HTTP front.
        self._api_domains = [f"https://{api}.execute-api.{REGION}.amazonaws.com" for api in self.deployment.api_ids]

    def _create_secret(self) -> None:
        if self.simulator is not None:
            secret: dict[str, str] = {"api_key": self.simulator.config.api_key}
            if self.options.webhook_secret_in_secret:
                secret["webhook_secret"] = self.simulator.config.webhook_secret
        else:
            if not self.options.wavespeed_api_key:
                raise RuntimeError("a WaveSpeed API key is needed to use the real API (set WAVESPEED_API_KEY)")
            secret = {"api_key": self.options.wavespeed_api_key}
        secrets = self.client("secretsmanager")
        arn = secrets.create_secret(Name=SECRET_NAME, SecretString=json.dumps(secret))["ARN"]

        def delete() -> None:
            # With the admin's credentials of the moment (IAM is enforced by then); moto's state may have
            # been reset meanwhile (in-process mocks).
            with suppress(ClientError):
                self.client("secretsmanager").delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)

        self._cleanup.callback(delete)

    def _create_event_subscriber(self) -> None:
        """Not in the template: a queue subscribed to the bus, so the demo and tests see what was published."""
        events, sqs = self.client("events"), self.client("sqs")
        name = f"{self.stack_name}-events"
        self.deployment.queue_urls["Events"] = sqs.create_queue(QueueName=name)["QueueUrl"]
        bus = self.names["JobEventBus"]
        events.put_rule(Name="all-job-events", EventBusName=bus, EventPattern=json.dumps({"source": ["loradrop"]}))
        events.put_targets(
            Rule="all-job-events",
            EventBusName=bus,
            Targets=[{"Id": "local-subscriber", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"}],
        )

    def _environment(self, spec: Any, role: dict[str, str]) -> dict[str, str]:
        own = dict(spec.environment)
        for key, value in own.items():
            for domain in self._api_domains:
                own[key] = value.replace(domain, self.api_url)
        knobs = {
            "RETRY_DELAY_SCALE": str(self.options.time_scale),
            "ABSENCE_CONFIRM_SECONDS": str(self._scaled(ABSENCE_CONFIRM_SECONDS)),
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        lambda_variables = {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "_HANDLER": spec.handler,
        }
        endpoint = {"AWS_ENDPOINT_URL": self.endpoint}  # the one local difference: AWS is moto's server
        return lambda_variables | role | own | endpoint | knobs | self.options.extra_environment

    def _concurrency(self, logical_id: str) -> int:
        if self.options.lambda_endpoint is not None:
            return 1  # SAM keeps one container per function
        spec = self.deployment.functions[logical_id]
        limit = spec.reserved_concurrency or self.options.account_concurrency
        for source in self.deployment.queue_sources:
            if source.function == logical_id:
                limit = min(limit, source.max_concurrency or SQS_DEFAULT_POLLERS)
        if any(stream.function == logical_id for stream in self.deployment.stream_sources):
            limit = 1  # one batch per shard at a time, and moto's stream has one shard
        return limit

    def _start_runtimes(self, roles: dict[str, dict[str, str]]) -> None:
        for logical_id, spec in self.deployment.functions.items():
            config = FunctionConfig(
                logical_id=logical_id,
                name=spec.name,
                arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}",
                handler=spec.handler,
                timeout=self.options.function_timeouts.get(logical_id, spec.timeout),
                memory_mb=spec.memory,
                environment=self._environment(spec, roles[logical_id]),
                concurrency=self._concurrency(logical_id),
            )
            if self.options.lambda_endpoint is not None:
                self.runtimes[logical_id] = RemoteRuntime(config, self.options.lambda_endpoint)
            else:
                self.runtimes[logical_id] = FunctionRuntime(config, self.options.log_file)

    def _start_pollers(self, roles: dict[str, dict[str, str]]) -> None:
        for source in self.deployment.queue_sources:
            # The event source mapping polls with the function's execution role.
            sqs = self.client("sqs", roles[source.function])
            url = self.queue_urls[source.queue]
            arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.names[source.queue]}"
            for n in range(self._concurrency(source.function)):
                self._spawn(
                    f"poll-{source.function}-{n}",
                    poll_queue,
                    self._stopping,
                    sqs,
                    url,
                    arn,
                    source.function,
                    source.batch_size,
                    self.invoke,
                )
        for stream in self.deployment.stream_sources:
            # The mapping reads the stream and sends failed batches' places with the function's execution role.
            streams = self.client("dynamodbstreams", roles[stream.function])
            failures = partial(_send_to, self.client("sqs", roles[stream.function]), stream.on_failure)
            poller = (self._stopping, streams, stream, self.invoke, failures)
            self._spawn(f"stream-{stream.function}", poll_stream, *poller)
        if self.options.run_reconciler:
            for function, expression in self.deployment.schedules.items():
                every = self.options.reconcile_every or self._scaled(schedule_seconds(expression))
                self._spawn(f"schedule-{function}", run_every, self._stopping, max(0.2, every), function, self.invoke)

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _start_webhook_server(self) -> None:
        if self.options.api_url is not None:  # SAM's start-api serves the route
            self.api_url = self.options.api_url
            return
        self._webhook_server = LoopbackHTTPServer(
            ("127.0.0.1", 0), api_gateway_handler(self.invoke, self.deployment.routes)
        )
        host, port = self._webhook_server.server_address[:2]
        self.api_url = f"http://{host!s}:{port}"
        self._spawn("api-gateway", self._webhook_server.serve_forever)

    @property
    def webhook_url(self) -> str:
        return self.function_environment("SubmitTrainingFunction")["WEBHOOK_URL"]

    def write_state(self, state_dir: Path) -> None:
        """Where the CLI (in another process) finds this stack."""
        state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "endpoint": self.endpoint,
            "region": REGION,
            "credentials": self.credentials,  # the local admin's: moto's, valid only for this run
            "names": self.names,
            "queues": self.queue_urls,
            "webhook_url": self.webhook_url,
            "wavespeed_api": self.wavespeed_api,
            # for `loradrop submit --quote` and `loradrop budget`: names and settings, no secret
            "submit_environment": self.function_environment("SubmitTrainingFunction"),
            "pid": os.getpid(),
        }
        path = state_dir / "local.json"
        path.write_text(json.dumps(state, indent=2))
        path.chmod(0o600)
        # For the AWS CLI and other SDKs: AWS_SHARED_CREDENTIALS_FILE=<this> AWS_PROFILE=loradrop-local
        credentials = state_dir / "credentials"
        credentials.write_text(
            f"[{PROFILE}]\naws_access_key_id = {self.credentials['AWS_ACCESS_KEY_ID']}\n"
            f"aws_secret_access_key = {self.credentials['AWS_SECRET_ACCESS_KEY']}\n"
        )
        credentials.chmod(0o600)

    # ----- Lambda-like invocation -----
    def invoke(self, logical_id: str, event: dict[str, Any], timeout: float | None = None) -> Any:
        """Invoke a function as Lambda would (a warm worker, or a cold one); a function error is
        recorded in `handler_errors` and raised as `FunctionError`."""
        try:
            return self.runtimes[logical_id].invoke(event, timeout)
        except FunctionError as err:
            self.handler_errors.append((logical_id, str(err)))
            raise

    def _kill_worker(self, tag: str) -> None:
        self.runtimes[tag.split(".", 1)[0]].kill_worker(tag)


def _send_to(sqs: Any, destination: str | None, body: dict[str, Any]) -> None:
    """Send to a queue named by its ARN (an on-failure destination), if there is one."""
    if destination:
        url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[1])["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))


@contextmanager
def running(options: StackOptions | None = None) -> Iterator[LocalStack]:
    stack = LocalStack(options).start()
    try:
        yield stack
    finally:
        stack.stop()
