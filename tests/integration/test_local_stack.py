"""The local stack builds what template.yaml declares."""

from __future__ import annotations

import json
import time

import pytest

from loradrop_local.stack import LocalStack

pytestmark = pytest.mark.integration


def test_table_matches_template(stack: LocalStack) -> None:
    described = stack.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    declared = stack.template.table
    assert described["KeySchema"] == declared["KeySchema"]
    indexes = {i["IndexName"]: i["KeySchema"] for i in described["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: i["KeySchema"] for i in declared["GlobalSecondaryIndexes"]}


def test_queues_match_template(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    for logical_id, spec in stack.template.queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_urls[logical_id], AttributeNames=["All"])
        redrive = attributes["Attributes"].get("RedrivePolicy")
        if spec.dead_letter:
            policy = json.loads(redrive)
            assert policy["maxReceiveCount"] == spec.max_receives
            assert policy["deadLetterTargetArn"].endswith(stack.names[spec.dead_letter])
        else:
            assert redrive is None


def test_bucket_notification_and_versioning_match_template(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    config = s3.get_bucket_notification_configuration(Bucket=stack.uploads_bucket)["QueueConfigurations"]
    rules = {r["Name"].lower(): r["Value"] for r in config[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "uploads/"}
    for bucket in (stack.uploads_bucket, stack.weights_bucket):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_every_template_variable_has_a_local_value(stack: LocalStack) -> None:
    for spec in stack.template.functions.values():
        for name in spec.environment:
            assert stack.environment[name], name


def test_objects_outside_the_uploads_prefix_start_no_job(stack: LocalStack) -> None:
    stack.client("s3").put_object(Bucket=stack.uploads_bucket, Key="elsewhere/photos.zip", Body=b"PK")
    from loradrop.jobs import JobStore

    time.sleep(1.0)  # notifications are asynchronous: give a wrong one time to arrive
    jobs = JobStore(stack.client("dynamodb"), stack.table_name).list(limit=1000)
    assert not any(j.source_key == "elsewhere/photos.zip" for j in jobs)
