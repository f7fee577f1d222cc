"""The local stack: loradrop without AWS or Docker.

moto's server stands in for S3, SQS, DynamoDB, Secrets Manager and EventBridge over real HTTP;
resources are created from template.yaml; S3 notifications flow to the intake queue; queue
pollers call the real handlers the way Lambda's SQS event source does (batches, partial batch
failures, visibility timeouts, redrive to the DLQ); an HTTP server turns webhook POSTs into API
Gateway payload 2.0 events; the reconciler runs on a (shortened) schedule; and the WaveSpeed
simulator plays WaveSpeed — or the real API is used when asked.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from loradrop_local.simulator import LoopbackHTTPServer, Simulator, SimulatorConfig
from loradrop_local.template import TemplateSpec, read_template, schedule_seconds

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK_NAME = "loradrop-local"
SECRET_ID = "loradrop/wavespeed"
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """What Powertools reads from Lambda's context object."""

    function_name: str
    timeout_seconds: float
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


_dynamodb_lock = threading.RLock()


def make_dynamodb_writes_atomic() -> None:
    """DynamoDB applies a conditional write atomically; moto's threaded server checks the condition
    and writes in two steps, so two concurrent writers can both pass. Serialize moto's writes so the
    local stack keeps DynamoDB's guarantee (the exactly-once tests depend on it)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in ("put_item", "update_item", "delete_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)
        if getattr(original, "_serialized", False):
            continue

        def serialized(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return _original(self, *args, **kwargs)

        serialized._serialized = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, serialized)


def reset_function_state() -> None:
    """Forget cached settings and clients, as a fresh Lambda container would (for a new stack)."""
    from aws_lambda_powertools.utilities import parameters

    from loradrop import queues, services, settings

    for module in (settings, services):
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
    queues._urls.clear()
    parameters.clear_caches()


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
    extra_environment: dict[str, str] = field(default_factory=dict)
    max_attempts: int | None = None
    run_reconciler: bool = True  # tests may invoke it themselves instead
    # Function timeouts (seconds) instead of the template's, e.g. a short StoreWeights timeout so a
    # copy's lease runs out within a test.
    function_timeouts: dict[str, float] = field(default_factory=dict)


class LocalStack:
    def __init__(self, options: StackOptions | None = None, template: TemplateSpec | None = None) -> None:
        self.options = options or StackOptions()
        self.template = template or read_template()
        self.simulator: Simulator | None = None
        self.names: dict[str, str] = {}
        self.queue_urls: dict[str, str] = {}
        self.environment: dict[str, str] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._moto: Any = None
        self._webhook_server: ThreadingHTTPServer | None = None
        self._saved_environ: dict[str, str] = {}
        self.invocations: dict[str, int] = {}
        self.handler_errors: list[tuple[str, str]] = []

    # ----- lifecycle -----
    def start(self) -> LocalStack:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        make_dynamodb_writes_atomic()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._set_aws_environment()
        if self.options.wavespeed_api is None:
            self.simulator = Simulator(self.options.simulator).start()
        self._start_webhook_server()
        self._create_resources()
        self._set_function_environment()
        reset_function_state()
        self._redirect_logs()
        self._start_pollers()
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
        if self.simulator is not None:
            self.simulator.stop()
        if self._moto is not None:
            self._moto.stop()
        for key in list(os.environ):
            if key not in self._saved_environ:
                del os.environ[key]
        os.environ.update(self._saved_environ)
        reset_function_state()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----- clients for callers (tests, CLI) -----
    def client(self, service: str) -> Any:
        config = Config(signature_version="s3v4") if service == "s3" else None
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=config,
        )

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
    def webhook_url(self) -> str:
        return self.environment["WEBHOOK_URL"]

    # ----- setup -----
    def _set_aws_environment(self) -> None:
        self._saved_environ = dict(os.environ)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_DEFAULT_REGION": REGION,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_SESSION_TOKEN": "local",
            }
        )

    def _scaled(self, seconds: float) -> float:
        return seconds * self.options.time_scale

    def _create_resources(self) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.names = {
            "UploadsBucket": f"loradrop-local-uploads-{suffix}",
            "WeightsBucket": f"loradrop-local-weights-{suffix}",
            "JobsTable": f"loradrop-local-jobs-{suffix}",
            "JobEventBus": f"{STACK_NAME}-jobs-{suffix}",
        }
        self._create_table()
        self._create_queues(suffix)
        self._create_buckets()
        self._create_bus(suffix)
        self._create_secret()

    def _create_table(self) -> None:
        table = self.template.table
        self.client("dynamodb").create_table(
            TableName=self.table_name,
            AttributeDefinitions=table["AttributeDefinitions"],
            KeySchema=table["KeySchema"],
            GlobalSecondaryIndexes=table.get("GlobalSecondaryIndexes", []),
            BillingMode=table["BillingMode"],
        )

    def _create_queues(self, suffix: str) -> None:
        sqs = self.client("sqs")
        # Dead-letter queues first: the others point at them.
        ordered = sorted(self.template.queues.values(), key=lambda q: q.dead_letter is not None)
        for spec in ordered:
            attributes = {
                "VisibilityTimeout": str(max(1, round(self._scaled(spec.visibility_timeout)))),
                "MessageRetentionPeriod": str(spec.retention),
            }
            if spec.dead_letter:
                dlq_arn = self._queue_arn(spec.dead_letter)
                attributes["RedrivePolicy"] = json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": spec.max_receives}
                )
            name = f"loradrop-local-{spec.logical_id}-{suffix}"
            self.queue_urls[spec.logical_id] = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            self.names[spec.logical_id] = name

    def _queue_arn(self, logical_id: str) -> str:
        return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self.names[logical_id]}"

    def _create_buckets(self) -> None:
        s3 = self.client("s3")
        for logical_id in ("UploadsBucket", "WeightsBucket"):
            s3.create_bucket(Bucket=self.names[logical_id])
            if self.template.bucket_versioned(logical_id):
                s3.put_bucket_versioning(Bucket=self.names[logical_id], VersioningConfiguration={"Status": "Enabled"})
        queue_configs = [
            {
                "QueueArn": self._queue_arn(config["Queue"]["Fn::GetAtt"][0]),
                "Events": [config["Event"]],
                "Filter": {"Key": {"FilterRules": config["Filter"]["S3Key"]["Rules"]}},
            }
            for config in self.template.bucket_notifications("UploadsBucket")
        ]
        s3.put_bucket_notification_configuration(
            Bucket=self.uploads_bucket, NotificationConfiguration={"QueueConfigurations": queue_configs}
        )

    def _create_bus(self, suffix: str) -> None:
        events = self.client("events")
        sqs = self.client("sqs")
        events.create_event_bus(Name=self.names["JobEventBus"])
        # A local subscriber, so the demo and tests can see what was published.
        name = f"loradrop-local-events-{suffix}"
        self.queue_urls["Events"] = sqs.create_queue(QueueName=name)["QueueUrl"]
        events.put_rule(
            Name="all-job-events",
            EventBusName=self.names["JobEventBus"],
            EventPattern=json.dumps({"source": ["loradrop"]}),
        )
        events.put_targets(
            Rule="all-job-events",
            EventBusName=self.names["JobEventBus"],
            Targets=[{"Id": "local-subscriber", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"}],
        )

    def _create_secret(self) -> None:
        if self.simulator is not None:
            secret: dict[str, str] = {"api_key": self.simulator.config.api_key}
            if self.options.webhook_secret_in_secret:
                secret["webhook_secret"] = self.simulator.config.webhook_secret
        else:
            if not self.options.wavespeed_api_key:
                raise RuntimeError("a WaveSpeed API key is needed to use the real API (set WAVESPEED_API_KEY)")
            secret = {"api_key": self.options.wavespeed_api_key}
        self.client("secretsmanager").create_secret(Name=SECRET_ID, SecretString=json.dumps(secret))

    def _set_function_environment(self) -> None:
        """Every variable the template gives any function, with its local value."""
        params = self.template.raw.get("Parameters", {})

        def default(name: str) -> str:
            return str(params[name]["Default"])

        api_base = self.options.wavespeed_api or (self.simulator.url if self.simulator else "")
        output_hosts = default("OutputHosts")
        if self.simulator is not None:
            output_hosts += f",{self.simulator.url}"
        mappings = self.template.raw["Mappings"]["Limits"]["Queues"]
        values = {
            "JOBS_TABLE": self.table_name,
            "EVENT_BUS_NAME": self.names["JobEventBus"],
            "WAVESPEED_API_BASE": api_base,
            "WAVESPEED_SECRET_ID": SECRET_ID,
            "POWERTOOLS_SERVICE_NAME": "loradrop",
            "POWERTOOLS_METRICS_NAMESPACE": "loradrop",
            "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"),
            "WEBHOOK_URL": self._webhook_url,
            "TRAINER_MODEL": default("TrainerModel"),
            "DEFAULT_TRIGGER_WORD": default("DefaultTriggerWord"),
            "DEFAULT_STEPS": default("DefaultSteps"),
            "DEFAULT_LEARNING_RATE": default("DefaultLearningRate"),
            "DEFAULT_LORA_RANK": default("DefaultLoraRank"),
            "PRESIGN_EXPIRY_SECONDS": default("PresignExpirySeconds"),
            "STORE_QUEUE_URL": self.queue_urls["StoreQueue"],
            "INTAKE_QUEUE_URL": self.queue_urls["IntakeQueue"],
            "MAX_ATTEMPTS": str(self.options.max_attempts or default("MaxAttempts")),
            "WAVESPEED_RESULT_TRIES": "2",
            "WAVESPEED_RESULT_TIMEOUT_SECONDS": "4",
            "WEIGHTS_BUCKET": self.weights_bucket,
            "WEIGHTS_PREFIX": "loras/",
            "OUTPUT_HOSTS": output_hosts,
            "STORE_MAX_RECEIVES": str(mappings["StoreMaxReceives"]),
            "MAX_WEIGHTS_MIB": default("MaxWeightsMiB"),
            "RECONCILE_AFTER_SECONDS": str(
                round(
                    self.options.reconcile_after
                    if self.options.reconcile_after is not None
                    else self._scaled(float(default("ReconcileAfterSeconds")))
                )
            ),
            "UNCERTAIN_GRACE_SECONDS": str(round(self._scaled(float(default("UncertainGraceSeconds"))))),
            "SETTLE_DEADLINE_SECONDS": str(round(self._scaled(float(default("SettleDeadlineSeconds"))))),
            "RETRY_DELAY_SCALE": str(self.options.time_scale),
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        needed = {name for spec in self.template.functions.values() for name in spec.environment}
        missing = needed - set(values)
        if missing:
            raise RuntimeError(f"the local stack has no value for template variables: {sorted(missing)}")
        self.environment = values | self.options.extra_environment
        os.environ.update(self.environment)

    def _redirect_logs(self) -> None:
        """Handlers log JSON to stdout; the local stack can send it to a file instead."""
        if self.options.log_file is None:
            return
        for name in self.template.functions.values():
            importlib.import_module(name.handler.rsplit(".", 1)[0])
        stream = self.options.log_file.open("a", encoding="utf-8")
        for handler in logging.getLogger("loradrop").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(stream)

    def write_state(self, state_dir: Path) -> None:
        """Where the CLI (in another process) finds this stack."""
        state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "endpoint": self.endpoint,
            "region": REGION,
            "names": self.names,
            "queues": self.queue_urls,
            "webhook_url": self._webhook_url,
            "wavespeed_api": self.environment["WAVESPEED_API_BASE"],
            "pid": os.getpid(),
        }
        (state_dir / "local.json").write_text(json.dumps(state, indent=2))

    # ----- Lambda-like invocation -----
    def handler(self, logical_id: str) -> Handler:
        module, name = self.template.functions[logical_id].handler.rsplit(".", 1)
        function: Handler = getattr(importlib.import_module(module), name)
        return function

    def invoke(self, logical_id: str, event: dict[str, Any], timeout: float | None = None) -> Any:
        spec = self.template.functions[logical_id]
        timeout = timeout or self.options.function_timeouts.get(logical_id, spec.timeout)
        context = LambdaContext(function_name=f"loradrop-local-{logical_id}", timeout_seconds=timeout)
        self.invocations[logical_id] = self.invocations.get(logical_id, 0) + 1
        return self.handler(logical_id)(event, context)

    def _start_pollers(self) -> None:
        for spec in self.template.functions.values():
            if spec.queue:
                for n in range(spec.max_concurrency):
                    self._spawn(f"poll-{spec.logical_id}-{n}", self._poll, spec.logical_id, spec.queue, spec.batch_size)
            if spec.schedule and self.options.run_reconciler:
                every = self.options.reconcile_every or self._scaled(schedule_seconds(spec.schedule))
                self._spawn(f"schedule-{spec.logical_id}", self._every, spec.logical_id, max(0.2, every))

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll(self, logical_id: str, queue: str, batch_size: int) -> None:
        """Lambda's SQS event source: receive a batch, invoke, delete what succeeded."""
        sqs = self.client("sqs")
        url = self.queue_urls[queue]
        arn = self._queue_arn(queue)
        while not self._stopping.is_set():
            try:
                answer = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(batch_size, 10),
                    WaitTimeSeconds=1,
                    MessageSystemAttributeNames=["All"],
                )
            except Exception:  # moto is shutting down
                if self._stopping.wait(0.2):
                    return
                continue
            messages = answer.get("Messages", [])
            if not messages:
                continue
            event = {"Records": [self._sqs_record(message, arn) for message in messages]}
            failed: set[str] = {m["MessageId"] for m in messages}
            try:
                result = self.invoke(logical_id, event) or {}
                failed = {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}
            except Exception as err:  # the whole batch returns to the queue, as in Lambda
                self.handler_errors.append((logical_id, repr(err)))
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    @staticmethod
    def _sqs_record(message: dict[str, Any], arn: str) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": REGION,
        }

    def _every(self, logical_id: str, seconds: float) -> None:
        while not self._stopping.wait(seconds):
            try:
                self.invoke(logical_id, scheduled_event())
            except Exception as err:
                self.handler_errors.append((logical_id, repr(err)))

    # ----- API Gateway (HTTP API, payload 2.0) -----
    def _start_webhook_server(self) -> None:
        routes = {spec.http_route: spec.logical_id for spec in self.template.functions.values() if spec.http_route}
        self._webhook_server = LoopbackHTTPServer(("127.0.0.1", 0), _api_gateway_handler(self, routes))
        host, port = self._webhook_server.server_address[:2]
        self.api_url = f"http://{host!s}:{port}"
        (route,) = [path for (_, path) in routes]
        self._webhook_url = f"{self.api_url}{route}"
        self._spawn("api-gateway", self._webhook_server.serve_forever)

    # ----- observing -----
    def job(self, job_id: str) -> dict[str, Any] | None:
        from loradrop.jobs import JobStore

        found = JobStore(self.client("dynamodb"), self.table_name).get(job_id)
        return found.public() if found else None

    def upload(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        """PUT a ZIP into the uploads bucket; return the id of the job it will create."""
        answer = self.client("s3").put_object(Bucket=self.uploads_bucket, Key=key, Body=body, Metadata=metadata or {})
        return job_id_for_upload(self.uploads_bucket, key, answer.get("VersionId"), answer["ETag"])

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


def job_id_for_upload(bucket: str, key: str, version_id: str | None, etag: str) -> str:
    """The job id SubmitTraining derives from the notification. moto's notifications carry no
    versionId (AWS's do), so locally the ETag names the upload."""
    from loradrop.jobs import job_id_for

    del version_id  # present in AWS's notifications, absent from moto's
    return job_id_for(bucket, key, None, etag)


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/reconcile"],
        "detail": {},
    }


def http_api_event(method: str, path: str, headers: dict[str, str], body: bytes, source_ip: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as Lambda receives it."""
    parts = urlsplit(path)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": f"{method} {parts.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": "localhost",
            "domainPrefix": "localhost",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {parts.path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def _api_gateway_handler(stack: LocalStack, routes: dict[tuple[str, str], str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {"content-type": "application/json"}).items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > API_GATEWAY_MAX_BODY:
                self.close_connection = True
                return self._answer(413, b'{"message":"Request Entity Too Large"}')
            body = self.rfile.read(length) if length else b""
            logical_id = routes.get((self.command, urlsplit(self.path).path))
            if logical_id is None:
                return self._answer(404, b'{"message":"Not Found"}')
            headers: dict[str, str] = {}
            for name, value in self.headers.items():  # HTTP API lower-cases names and joins repeats
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            event = http_api_event(self.command, self.path, headers, body, self.client_address[0])
            try:
                result = stack.invoke(logical_id, event)
            except Exception as err:
                stack.handler_errors.append((logical_id, repr(err)))
                return self._answer(500, b'{"message":"Internal Server Error"}')
            raw = result.get("body") or ""
            payload = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
            self._answer(int(result.get("statusCode", 200)), payload, result.get("headers"))

        do_POST = _route
        do_GET = _route
        do_PUT = _route

    return Handler


@contextmanager
def running(options: StackOptions | None = None) -> Iterator[LocalStack]:
    stack = LocalStack(options).start()
    try:
        yield stack
    finally:
        stack.stop()
