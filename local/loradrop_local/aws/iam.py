"""IAM enforced on the local stack: moto's own evaluator, given the resource ARN where moto leaves it
as "*", and credentials per principal (an admin for the stack's own calls, an assumed-role session per
function, as Lambda gives each function its execution role)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What is enforced and what is not (the README repeats it).
ENFORCED = (
    "every AWS call a function or its event source mapping makes is signed with the function's role "
    "session and checked by moto against the role's translated policies: action and resource "
    "(S3 bucket/key, SQS queue, DynamoDB table and index, each write of a DynamoDB transaction, Secrets Manager "
    "secret, EventBridge bus)"
)
NOT_ENFORCED = (
    "policy conditions (moto evaluates only trust-policy conditions)",
    "bucket and queue policies (S3 notifications and EventBridge targets are delivered regardless)",
    "KMS key policies, Lambda permissions, the scheduler's role",
    "presigned URLs are checked for a valid signature, not against the signer's policies",
)


def _json_body(response: Any) -> dict[str, Any]:
    if isinstance(response.body, dict):  # some handlers have parsed it already
        return response.body
    try:
        body = json.loads(response.body or "{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _dynamodb_resource(self: Any) -> str:
    body = _json_body(self)
    table = body.get("TableName")
    if not table:
        return "*"
    arn = f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}"
    return f"{arn}/index/{body['IndexName']}" if body.get("IndexName") else arn


_TRANSACT_ACTIONS = {
    "Update": "UpdateItem",
    "Put": "PutItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}


def _authorize_transactions(original: Any) -> Any:
    """IAM has no action for TransactWriteItems: AWS checks each of its writes as the action it is (UpdateItem,
    PutItem, …) on its own table. moto checks `dynamodb:TransactWriteItems`, which no real policy grants."""
    from moto.iam.access_control import IAMRequest

    def authorize(self: Any, resource: str = "*") -> None:
        if self._get_action() != "TransactWriteItems" or not enforcing():
            return original(self, resource)
        items = _json_body(self).get("TransactItems") or []
        if not items:  # nothing to authorize by: as moto would, against the operation's own name
            return original(self, resource)
        for item in items:
            kind, write = next(iter(item.items()))
            request = IAMRequest(
                account_id=self.current_account,
                method=self.method,
                path=self.raw_path,
                data=self.data,
                body=self.raw_body,
                headers=self.headers,
                action=_TRANSACT_ACTIONS.get(kind, kind),
            )
            request.check_signature()
            table = write.get("TableName", "*")
            request.check_action_permitted(f"arn:aws:dynamodb:{self.region}:{self.current_account}:table/{table}")
        return None

    authorize._transactions = True  # type: ignore[attr-defined]
    return authorize


def _secret_resource(self: Any) -> str:
    from moto.secretsmanager.models import secretsmanager_backends

    secret_id = _json_body(self).get("SecretId")
    if not secret_id:
        return "*"
    secrets = secretsmanager_backends[self.current_account][self.region].secrets
    secret = secrets.get(secret_id) if secret_id in secrets else None
    return str(secret.arn) if secret is not None else str(secret_id)


def _event_bus_resource(self: Any) -> str:
    entries = _json_body(self).get("Entries") or [{}]
    bus = entries[0].get("EventBusName") or "default"
    return bus if bus.startswith("arn:") else f"arn:aws:events:{self.region}:{self.current_account}:event-bus/{bus}"


def _sqs_resource(original: Any) -> Any:
    def resource(self: Any) -> str:
        name = self._get_param("QueueName")  # GetQueueUrl names the queue, it has no URL yet
        if name:
            return f"arn:aws:sqs:{self.region}:{self.current_account}:{name}"
        return str(original(self))

    resource._filled = True  # type: ignore[attr-defined]
    return resource


def _authorize_presigned(original: Any) -> Any:
    """moto reads the principal from the Authorization header, which a presigned URL has not (its
    credential is in the query): check the request as the signer's, as S3 does."""
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.responses import S3Response

    def authorize(self: S3Response, bucket_name: str | None = None, key_name: str | None = None) -> None:
        query = {k: v[0] if isinstance(v, list) else v for k, v in (self.querystring or {}).items()}
        if "Authorization" in self.headers or "X-Amz-Credential" not in query:
            return original(self, bucket_name=bucket_name, key_name=key_name)
        if not enforcing():
            return None
        headers = dict(self.headers)
        headers["Authorization"] = f"AWS4-HMAC-SHA256 Credential={query['X-Amz-Credential']}, SignedHeaders=host"
        if "X-Amz-Security-Token" in query:
            headers["X-Amz-Security-Token"] = query["X-Amz-Security-Token"]
        request = S3IAMRequest(
            account_id=self.current_account,
            method=self.method,
            path=self.raw_path,
            data=self.data,
            body=self.raw_body,
            headers=headers,
            action=self._get_action(),
        )
        key = f"{bucket_name}/{key_name}" if key_name else bucket_name
        request.check_action_permitted(f"arn:aws:s3:::{key}")
        return None

    return authorize


def fill_moto_gaps() -> None:
    """moto checks these services' actions against "*", which no resource-scoped statement matches:
    give it the resource each request is about. Authorize presigned S3 requests as their signer, and a
    DynamoDB transaction as its writes."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.events.responses import EventsHandler
    from moto.s3.responses import S3Response
    from moto.secretsmanager.responses import SecretsManagerResponse
    from moto.sqs.responses import SQSResponse

    DynamoHandler._determine_resource = _dynamodb_resource  # type: ignore[attr-defined]
    if not getattr(DynamoHandler._authenticate_and_authorize_normal_action, "_transactions", False):
        patched_dynamodb = _authorize_transactions(DynamoHandler._authenticate_and_authorize_normal_action)
        DynamoHandler._authenticate_and_authorize_normal_action = patched_dynamodb  # type: ignore[method-assign]
    SecretsManagerResponse._determine_resource = _secret_resource  # type: ignore[attr-defined]
    EventsHandler._determine_resource = _event_bus_resource  # type: ignore[attr-defined]
    if not getattr(SQSResponse._determine_resource, "_filled", False):
        SQSResponse._determine_resource = _sqs_resource(SQSResponse._determine_resource)  # type: ignore[method-assign]
    if not getattr(S3Response._authenticate_and_authorize_s3_action, "_presigned", False):
        patched = _authorize_presigned(S3Response._authenticate_and_authorize_s3_action)
        patched._presigned = True
        S3Response._authenticate_and_authorize_s3_action = patched  # type: ignore[method-assign]


_request = threading.local()


class _PerRequestSettings:
    """moto reads INITIAL_NO_AUTH_ACTION_COUNT from its settings module for every request, process-wide.
    Seen through this proxy, it is 0 (enforce) only while a request that came through an enforcing
    stack's front is handled on this thread, so in-process moto (the unit tests) stays as moto is."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        if name == "INITIAL_NO_AUTH_ACTION_COUNT":
            return 0 if getattr(_request, "enforce", False) else float("inf")
        return getattr(self._settings, name)


def install() -> None:
    """Fill moto's gaps and route its enforcement switch through the per-request proxy (once)."""
    from moto.core import authorization

    if not isinstance(authorization.settings, _PerRequestSettings):
        fill_moto_gaps()
        authorization.settings = _PerRequestSettings(authorization.settings)  # type: ignore[assignment]


@contextmanager
def enforced(enabled: bool) -> Iterator[None]:
    """Mark the AWS request handled on this thread as one to check (the moto front wraps each request)."""
    _request.enforce = enabled
    try:
        yield
    finally:
        _request.enforce = False


def enforcing() -> bool:
    return bool(getattr(_request, "enforce", False))


def admin_credentials(iam: Any, user_name: str) -> dict[str, str]:
    """An IAM user with AdministratorAccess, for the stack's own calls (tests, the CLI, the pollers'
    bookkeeping), as a person deploying the stack would have."""
    iam.create_user(UserName=user_name)
    iam.attach_user_policy(UserName=user_name, PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
    key = iam.create_access_key(UserName=user_name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def role_credentials(sts: Any, role_arn: str, session_name: str) -> dict[str, str]:
    """An execution-role session, as Lambda puts in a function's environment."""
    credentials = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name[:64], DurationSeconds=43200)[
        "Credentials"
    ]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }
