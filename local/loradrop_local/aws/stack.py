"""The local stack: loradrop without AWS or Docker.

template.yaml is translated as SAM would deploy it and provisioned in moto's server (S3, SQS, DynamoDB,
Secrets Manager, EventBridge, IAM over real HTTP). Each function runs in worker processes of its own
with its own environment and its execution role's credentials, and moto enforces the role's policies.
Queue pollers play Lambda's SQS event source, an HTTP front plays API Gateway, a thread plays the
schedule, and the WaveSpeed simulator plays WaveSpeed (or the real API is used when asked).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from loradrop_local.aws import iam
from loradrop_local.aws.cloudformation import TEMPLATE_PATH, Resolver, translate
from loradrop_local.aws.http_api import api_gateway_handler
from loradrop_local.aws.lambda_runtime import FunctionConfig, FunctionError, FunctionRuntime
from loradrop_local.aws.moto_front import MotoFront, RequestHooks
from loradrop_local.aws.pollers import poll_queue, poll_stream, run_every
from loradrop_local.aws.provision import ACCOUNT, REGION, Deployment, Provisioner, schedule_seconds
from loradrop_local.aws.remote_runtime import RemoteRuntime
from loradrop_local.loopback import LoopbackHTTPServer
from loradrop_local.simulator.model import SimulatorConfig
from loradrop_local.simulator.server import Simulator

# Lambda scales a function up to the account's concurrency (1,000 by default); a 2-core machine cannot
# run that many workers, so locally a function without reserved concurrency has at most this many.
LOCAL_ACCOUNT_CONCURRENCY = 4
# Pollers of an SQS event source without MaximumConcurrency (Lambda starts with 5 and scales; locally 2).
SQS_DEFAULT_POLLERS = 2
# Not in the template: the local stack's time compression, and metrics kept out of the logs.
LOCAL_KNOBS = ("RETRY_DELAY_SCALE", "ABSENCE_CONFIRM_SECONDS", "POWERTOOLS_METRICS_DISABLED")
ABSENCE_CONFIRM_SECONDS = 300  # the reconciler's default (settings.ReconcilePart), compressed like the rest
SECRET_NAME = "loradrop/wavespeed"
PROFILE = "loradrop-local"  # the AWS CLI profile `loradrop local` writes to its state directory

_dynamodb_lock = threading.RLock()


def make_dynamodb_atomic() -> None:
    """DynamoDB applies a conditional write atomically; moto's threaded server checks the condition
    and writes in two steps, so two concurrent writers can both pass. Serialize moto's writes so the
    local stack keeps DynamoDB's guarantee (the exactly-once tests depend on it) — and its reads: a
    query sizing an item while a write changes it fails with "dictionary changed size during
    iteration" (seen at 600 jobs)."""
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    operations = ("put_item", "update_item", "delete_item", "transact_write_items", "get_item", "query", "scan")
    for backend, name in [(DynamoDBBackend, name) for name in operations] + [(DynamoDBStreamsBackend, "get_records")]:
        original = getattr(backend, name)
        if getattr(original, "_serialized", False):
            continue

        def serialized(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return _original(self, *args, **kwargs)

        serialized._serialized = True  # type: ignore[attr-defined]
        setattr(backend, name, serialized)


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


class LocalStack:
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
    def names(self) -> dict[str, str]:
        return self.deployment.names

    @property
    def queue_urls(self) -> dict[str, str]:
        return self.deployment.queue_urls

    @property
    def uploads_bucket(self) -> str:
        return self.names["UploadsBucket"]

    @property
    def weights_bucket(self) -> str:
        return self.names["WeightsBucket"]

    @property
    def table_name(self) -> str:
        return self.names["JobsTable"]

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

    @property
    def invocations(self) -> dict[str, int]:
        return {logical_id: runtime.invocations for logical_id, runtime in self.runtimes.items()}

    # ----- observing -----
    def job(self, job_id: str) -> dict[str, Any] | None:
        from loradrop.jobs import JobStore

        found = JobStore(self.client("dynamodb"), self.table_name).get(job_id)
        return found.public() if found else None

    def upload(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        """PUT a ZIP into the uploads bucket; return the id of the job it will create."""
        from loradrop.job import job_id_for

        answer = self.client("s3").put_object(Bucket=self.uploads_bucket, Key=key, Body=body, Metadata=metadata or {})
        # moto's notifications carry no versionId (AWS's do), so locally the ETag names the upload.
        return job_id_for(self.uploads_bucket, key, None, answer["ETag"])

    def wait_for(self, job_id: str, statuses: set[str], timeout: float = 30.0) -> dict[str, Any]:
        """Poll the job until it reaches one of `statuses`; raise with the last state if it does not."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job is not None and job["status"] in statuses:
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} did not reach {sorted(statuses)} in {timeout}s; last: {job}")

    def drain_events(self) -> list[dict[str, Any]]:
        """Job events published so far (the local subscriber queue's messages), removed from it."""
        return self.drain_queue("Events")

    def notifications(self, topic: str = "NotificationTopic") -> list[str]:
        """What the topic would have sent its subscribers (an email's text) since the last call."""
        inbox = self.deployment.inboxes.get(topic)
        return [str(body.get("message", body)) for body in self.drain_queue(inbox)] if inbox else []

    def drain_queue(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete every visible message (SQS allows one purge a minute; this has no limit)."""
        sqs = self.client("sqs")
        bodies: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.queue_urls[logical_id], MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_urls[logical_id], ReceiptHandle=message["ReceiptHandle"])

    def dead_letters_for(self, logical_id: str, job_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait for a job's message to reach a dead-letter queue (SQS moves it on the receive after the
        last failure, seconds after the job ended); return that job's messages. Others found on the way
        are removed too: each test or scenario owns its own job."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            found = [body for body in self.drain_queue(logical_id) if body.get("job_id") == job_id]
            if not found:
                time.sleep(0.1)
        return found

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


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
