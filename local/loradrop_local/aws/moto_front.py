"""moto's server behind a thin WSGI front that sees every AWS request the functions make: who sent it
(each worker names itself in the User-Agent), which operation, and on what. Fault scenarios use it to
fail a request as AWS would, or to kill the worker that sent it (a crash at exactly that step). Also
`make_dynamodb_atomic`: moto's DynamoDB made as atomic as DynamoDB is."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from loradrop_local.aws import iam

# botocore's standard retry mode makes up to 4 attempts of a DynamoDB call that meets a 5xx (3 elsewhere).
DYNAMODB_SDK_ATTEMPTS = 4
_APP_ID = re.compile(r"\bapp/([\w.-]+)")
_CREDENTIAL = re.compile(r"Credential=([^/]+)/[^/]+/[^/]+/([^/]+)/")


@dataclass(frozen=True)
class AwsRequest:
    service: str  # from the signature's credential scope: s3, dynamodb, sqs, events, secretsmanager, ...
    operation: str  # "UpdateItem", "SendMessage", "PutObject", "UploadPart", ...
    method: str
    path: str
    body: bytes
    caller: str | None  # the worker's tag, when a function sent it
    access_key: str | None

    def json(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


@dataclass
class Fault:
    """`action` is "kill" (the sending worker dies before AWS applies the request), "kill_after" (AWS applies
    it, then the worker dies before it reads the answer: a crash right after a write), "slow:<seconds>" (AWS
    answers that much later), or an AWS error code answered with HTTP 500. It fires on the first `times`
    matching requests."""

    matches: Callable[[AwsRequest], bool]
    action: str
    times: int = 1
    fired: int = 0


@dataclass
class RequestHooks:
    faults: list[Fault] = field(default_factory=list)
    kill: Callable[[str], None] = lambda tag: None
    enforce_iam: bool = False  # turned on once the stack is provisioned
    observers: list[Callable[[AwsRequest], None]] = field(default_factory=list)  # e.g. counting calls
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def injected(self, fault: Fault) -> Iterator[Fault]:
        with self._lock:
            self.faults.append(fault)
        try:
            yield fault
        finally:
            with self._lock:
                self.faults.remove(fault)

    def take(self, request: AwsRequest) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.fired < fault.times and fault.matches(request):
                    fault.fired += 1
                    return fault
        return None


def _parse(environ: dict[str, Any], body: bytes) -> AwsRequest:
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    credential = _CREDENTIAL.search(authorization) or _CREDENTIAL.search(
        "Credential=" + unquote(query.get("X-Amz-Credential", [""])[0])
    )
    service = credential.group(2) if credential else ""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    method = environ.get("REQUEST_METHOD", "")
    path = unquote(environ.get("PATH_INFO", ""))
    if target:
        operation = target.rsplit(".", 1)[-1]
    elif service == "s3":
        operation = _s3_operation(method, path, query)
    else:
        operation = str(query.get("Action", [method])[0])
    agent = _APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
    return AwsRequest(
        service=service,
        operation=operation,
        method=method,
        path=path,
        body=body,
        caller=agent.group(1) if agent else None,
        access_key=credential.group(1) if credential else None,
    )


_S3_OBJECT_OPERATIONS = (  # (method, query parameter present, operation), first match wins
    ("PUT", "partNumber", "UploadPart"),
    ("PUT", "tagging", "PutObjectTagging"),
    ("PUT", "", "PutObject"),
    ("POST", "uploads", "CreateMultipartUpload"),
    ("POST", "uploadId", "CompleteMultipartUpload"),
    ("DELETE", "uploadId", "AbortMultipartUpload"),
    ("DELETE", "", "DeleteObject"),
    ("GET", "tagging", "GetObjectTagging"),
    ("GET", "", "GetObject"),
    ("HEAD", "", "HeadObject"),
)


def _s3_operation(method: str, path: str, query: dict[str, list[str]]) -> str:
    """S3's REST operation name, for object requests (path-style: /bucket/key) and the bucket listings."""
    if path.strip("/").count("/") == 0:  # a bucket
        if method == "GET":
            return "ListMultipartUploads" if "uploads" in query else "ListObjectsV2"
        return f"{method.title()}Bucket"
    for verb, parameter, name in _S3_OBJECT_OPERATIONS:
        if verb == method and (not parameter or parameter in query):
            return name
    return method


def _error(code: str, service: str) -> tuple[str, list[tuple[str, str]], bytes]:
    if service == "s3":
        body = f"<Error><Code>{code}</Code><Message>simulated by the local stack</Message></Error>".encode()
        return "500 Internal Server Error", [("Content-Type", "application/xml")], body
    payload = json.dumps({"__type": code, "message": "simulated by the local stack"}).encode()
    return "500 Internal Server Error", [("Content-Type", "application/x-amz-json-1.0")], payload


class HookedApplication:
    def __init__(self, app: Any, hooks: RequestHooks) -> None:
        self.app = app
        self.hooks = hooks

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with iam.enforced(self.hooks.enforce_iam):
            return self._handle(environ, start_response)

    def _handle(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.hooks.faults and not self.hooks.observers:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        request = _parse(environ, body)
        for observe in list(self.hooks.observers):
            observe(request)
        fault = self.hooks.take(request)
        if fault is not None and fault.action.startswith("slow:"):
            time.sleep(float(fault.action.removeprefix("slow:")))
        elif fault is not None and fault.action == "kill_after":
            answer = b"".join(self.app(environ, start_response))  # applied: the write is in the table
            if request.caller:
                self.hooks.kill(request.caller)
            return [answer]
        elif fault is not None:
            if fault.action == "kill" and request.caller:
                self.hooks.kill(request.caller)
            status, headers, payload = _error(
                "InternalServerError" if fault.action == "kill" else fault.action, request.service
            )
            start_response(status, [*headers, ("Content-Length", str(len(payload)))])
            return [payload]
        return self.app(environ, start_response)


class MotoFront(ThreadedMotoServer):
    """ThreadedMotoServer whose application passes through `hooks` first."""

    def __init__(self, hooks: RequestHooks, host: str = "127.0.0.1") -> None:
        super().__init__(ip_address=host, port=0, verbose=False)
        self.hooks = hooks

    def _server_entry(self) -> None:
        app = HookedApplication(DomainDispatcherApplication(create_backend_app), self.hooks)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


# ----- what scenarios match on -----
def dynamodb_write_to(status: str, job_id_part: str = "") -> Callable[[AwsRequest], bool]:
    """An UpdateItem moving a job (whose id contains `job_id_part`) to `status`."""

    def matches(request: AwsRequest) -> bool:
        if request.service != "dynamodb" or request.operation != "UpdateItem":
            return False
        body = request.json()
        moving_to = body.get("ExpressionAttributeValues", {}).get(":to", {}).get("S")
        return bool(moving_to == status and job_id_part in json.dumps(body.get("Key", {})))

    return matches


def sqs_send_naming(text: str) -> Callable[[AwsRequest], bool]:
    """An SQS SendMessage whose body contains `text` (e.g. a job id)."""

    def matches(request: AwsRequest) -> bool:
        return (
            request.service == "sqs"
            and request.operation == "SendMessage"
            and text in str(request.json().get("MessageBody", ""))
        )

    return matches


def s3_request_for(
    key_part: str, methods: tuple[str, ...] = ("GET", "HEAD", "PUT", "POST")
) -> Callable[[AwsRequest], bool]:
    """An S3 request (by HTTP method) of a function, on an object whose key contains `key_part`."""

    def matches(request: AwsRequest) -> bool:
        return (
            request.service == "s3"
            and request.caller is not None
            and request.method in methods
            and key_part in request.path
        )

    return matches


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
