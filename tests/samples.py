"""The samples in events/, pointed at a running local stack: its bucket and the upload's ETag, its queues'
ARNs, the job a message names, a webhook signed with the stack's secret. The same events serve `sam local
invoke` and the tests (tests/integration/test_events.py, tests/docker)."""

from __future__ import annotations

import json
import time
from typing import Any

from loradrop_local.aws.provision import ACCOUNT
from loradrop_local.aws.stack import LocalStack
from tests.conftest import load_event

# Which function each sample is for (events/README.md).
FUNCTION_OF = {
    "s3_put.json": "SubmitTrainingFunction",
    "sqs_upload.json": "SubmitTrainingFunction",
    "sqs_resubmit.json": "SubmitTrainingFunction",
    "sqs_retry.json": "SubmitTrainingFunction",
    "webhook_completed.json": "ReceiveWebhookFunction",
    "sqs_store.json": "StoreWeightsFunction",
    "sqs_sample.json": "StoreWeightsFunction",
    "schedule.json": "ReconcileJobsFunction",
    "stream_job_ended.json": "PublishEventsFunction",
    "stream_samples_ready.json": "PublishEventsFunction",
}


def queue_arn(stack: LocalStack, logical_id: str) -> str:
    return f"arn:aws:sqs:us-east-1:{ACCOUNT}:{stack.names[logical_id]}"


def s3_record_for(stack: LocalStack, notification: dict[str, Any], key: str) -> dict[str, Any]:
    """An S3 notification's record naming the upload at `key` in the stack's bucket."""
    etag = stack.client("s3").head_object(Bucket=stack.uploads_bucket, Key=key)["ETag"].strip('"')
    record = notification["Records"][0]
    record["s3"]["bucket"]["name"] = stack.uploads_bucket
    record["s3"]["object"].update({"key": key.replace(" ", "+"), "eTag": etag})
    record["s3"]["object"].pop("versionId")  # moto's uploads are named by ETag (see LocalStack.upload)
    return notification


def sample(stack: LocalStack, name: str, *, key: str | None = None, job_id: str | None = None) -> dict[str, Any]:
    """The sample `name`, pointed at the stack (`key`: an upload there; `job_id`: the job a message names)."""
    event = load_event(name)
    if name == "s3_put.json":
        assert key is not None
        return s3_record_for(stack, event, key)
    record = event.get("Records", [{}])[0]
    if name == "sqs_upload.json":
        assert key is not None
        record["eventSourceARN"] = queue_arn(stack, "IntakeQueue")
        record["body"] = json.dumps(s3_record_for(stack, json.loads(record["body"]), key))
    elif name in ("sqs_resubmit.json", "sqs_retry.json"):
        record["eventSourceARN"] = queue_arn(stack, "IntakeQueue")
        if job_id is not None:
            record["body"] = json.dumps(json.loads(record["body"]) | {"job_id": job_id})
    elif name in ("sqs_store.json", "sqs_sample.json"):
        record["eventSourceARN"] = queue_arn(stack, "StoreQueue")
    elif name == "webhook_completed.json":
        assert stack.simulator is not None
        timestamp = str(int(time.time()))
        event["headers"]["webhook-timestamp"] = timestamp
        event["headers"]["webhook-signature"] = stack.simulator.sign(
            event["headers"]["webhook-id"], timestamp, event["body"].encode()
        )
    return event
