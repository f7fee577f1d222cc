"""The local stack's AWS side, without a server: intrinsic functions, request parsing, fault queues."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from loradrop_local.aws.cloudformation import Resolver, Unresolvable
from loradrop_local.aws.lambda_runtime import FunctionConfig, FunctionError
from loradrop_local.aws.moto_front import AwsRequest, Fault, RequestHooks, _parse, dynamodb_write_to
from loradrop_local.aws.remote_runtime import RemoteRuntime

TEMPLATE: dict[str, Any] = {
    "Parameters": {"Stage": {"Type": "String", "Default": "dev"}, "Name": {"Type": "String"}},
    "Mappings": {"Limits": {"Queues": {"Receives": 5}}},
    "Conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]}},
}
PSEUDO = {
    "AWS::Region": "us-east-1",
    "AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/s/0e3f6a3e-1c2d-4b5a-9e8f-0123456789ab",
}


def test_intrinsics_resolve_as_cloudformation_would() -> None:
    resolver = Resolver(TEMPLATE, {"Name": "ana"}, PSEUDO)
    resolver.created("Queue", "https://sqs/queue", Arn="arn:aws:sqs:us-east-1:1:queue")
    suffix = {
        "Fn::Select": [4, {"Fn::Split": ["-", {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}]}]
    }
    assert resolver.resolve({"Fn::Sub": ["loradrop-${Stage}-uploads-${Suffix}", {"Suffix": suffix}]}) == (
        "loradrop-dev-uploads-0123456789ab"
    )
    assert resolver.resolve({"Fn::Sub": "${Queue.Arn}/x in ${AWS::Region} for ${Name}"}) == (
        "arn:aws:sqs:us-east-1:1:queue/x in us-east-1 for ana"
    )
    assert resolver.resolve({"Fn::FindInMap": ["Limits", "Queues", "Receives"]}) == 5
    assert resolver.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"
    assert resolver.resolve({"Fn::Join": [",", ["a", {"Ref": "Stage"}]]}) == "a,dev"
    assert resolver.resolve({"Nested": [{"Ref": "Queue"}]}) == {"Nested": ["https://sqs/queue"]}


def test_what_is_not_created_yet_or_not_declared_is_an_error() -> None:
    with pytest.raises(Unresolvable, match="not created yet"):
        Resolver(TEMPLATE, {}, PSEUDO).resolve({"Fn::GetAtt": ["Table", "Arn"]})
    with pytest.raises(Unresolvable, match="not in the template"):
        Resolver(TEMPLATE, {"Typo": "x"}, PSEUDO)


def environ(method: str, path: str, query: str = "", **headers: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query} | {
        f"HTTP_{name.upper()}": value for name, value in headers.items()
    }


SIGNED = "AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20261125/us-east-1/{}/aws4_request, SignedHeaders=host"


def test_requests_are_named_by_service_operation_and_the_worker_that_sent_them() -> None:
    body = json.dumps({"Key": {"job_id": {"S": "ana-1"}}, "ExpressionAttributeValues": {":to": {"S": "STORING"}}})
    request = _parse(
        environ(
            "POST",
            "/",
            authorization=SIGNED.format("dynamodb"),
            x_amz_target="DynamoDB_20120810.UpdateItem",
            user_agent="Boto3/1.44 md/x app/StoreWeightsFunction.3",
        ),
        body.encode(),
    )
    assert (request.service, request.operation, request.caller) == ("dynamodb", "UpdateItem", "StoreWeightsFunction.3")
    assert request.access_key == "ASIAEXAMPLE"
    assert dynamodb_write_to("STORING", "ana")(request)
    assert not dynamodb_write_to("COMPLETED")(request)


@pytest.mark.parametrize(
    ("method", "path", "query", "operation"),
    [
        ("PUT", "/weights/loras/a.safetensors", "partNumber=2&uploadId=u", "UploadPart"),
        ("PUT", "/weights/loras/a.safetensors", "tagging", "PutObjectTagging"),
        ("PUT", "/weights/loras/a.safetensors", "", "PutObject"),
        ("POST", "/weights/loras/a.safetensors", "uploads", "CreateMultipartUpload"),
        ("POST", "/weights/loras/a.safetensors", "uploadId=u", "CompleteMultipartUpload"),
        ("DELETE", "/weights/loras/a.safetensors", "uploadId=u", "AbortMultipartUpload"),
        ("HEAD", "/uploads/uploads/a.zip", "", "HeadObject"),
        ("GET", "/uploads/uploads/a.zip", "", "GetObject"),
        ("GET", "/weights", "list-type=2", "ListObjectsV2"),
        ("GET", "/weights", "uploads", "ListMultipartUploads"),
    ],
)
def test_s3_requests_get_their_operation_names(method: str, path: str, query: str, operation: str) -> None:
    request = _parse(environ(method, path, query, authorization=SIGNED.format("s3")), b"")
    assert request.operation == operation
    assert request.caller is None  # no app id: the harness's own call


def test_a_fault_fires_on_its_first_matches_only_and_leaves_with_its_block() -> None:
    hooks = RequestHooks()
    request = AwsRequest("sqs", "SendMessage", "POST", "/", b"{}", "X.1", "AKIA")
    with hooks.injected(Fault(lambda r: r.operation == "SendMessage", "kill", times=2)) as fault:
        assert [hooks.take(request) is fault for _ in range(3)] == [True, True, False]
    assert hooks.faults == []
    assert hooks.take(request) is None


def test_an_empty_answer_from_sams_start_lambda_is_a_failed_invocation_the_poller_retries() -> None:
    """SAM's start-lambda answers 200 with no payload when the emulated runtime was not listening yet ("No response
    from invoke container"): the event may never have reached the handler, so it must not count as handled (a
    stream batch taken for done would lose its events)."""
    config = FunctionConfig(
        "PublishEventsFunction", "publish", "arn:aws:lambda:::publish", "app.handler", 60, 256, {}, 1
    )
    runtime = RemoteRuntime(config, "http://127.0.0.1:9")
    with Stubber(runtime._client) as stub:
        for body in (b"", b'{"batchItemFailures": []}'):
            stub.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))})
        with pytest.raises(FunctionError, match="no response"):
            runtime.invoke({"Records": []})
        assert runtime.invoke({"Records": []}) == {"batchItemFailures": []}
