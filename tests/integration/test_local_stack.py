"""The local stack builds what template.yaml declares."""

from __future__ import annotations

import json
import time

import pytest

from loradrop_local.aws.cloudformation import translate
from loradrop_local.aws.stack import LocalStack

DEPLOYED = translate()["Resources"]

pytestmark = pytest.mark.integration


def test_table_matches_the_translated_template(stack: LocalStack) -> None:
    described = stack.client("dynamodb").describe_table(TableName=stack.table_name)["Table"]
    declared = DEPLOYED["JobsTable"]["Properties"]
    assert described["KeySchema"] == declared["KeySchema"]
    indexes = {i["IndexName"]: i["KeySchema"] for i in described["GlobalSecondaryIndexes"]}
    assert indexes == {i["IndexName"]: i["KeySchema"] for i in declared["GlobalSecondaryIndexes"]}


def test_queues_and_their_redrive_match_the_translated_template(stack: LocalStack) -> None:
    sqs = stack.client("sqs")
    queues = {name: r["Properties"] for name, r in DEPLOYED.items() if r["Type"] == "AWS::SQS::Queue"}
    assert set(queues) <= set(stack.queue_urls)
    for logical_id, props in queues.items():
        attributes = sqs.get_queue_attributes(QueueUrl=stack.queue_urls[logical_id], AttributeNames=["All"])
        redrive = attributes["Attributes"].get("RedrivePolicy")
        if "RedrivePolicy" in props:
            policy = json.loads(redrive)
            dead_letter = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
            assert policy["deadLetterTargetArn"].endswith(stack.names[dead_letter])
            assert policy["maxReceiveCount"] >= 3
        else:
            assert redrive is None
    # The queue policy CloudFormation would set is set (moto does not evaluate it: see the README)
    intake = sqs.get_queue_attributes(QueueUrl=stack.queue_urls["IntakeQueue"], AttributeNames=["Policy"])
    statement = json.loads(intake["Attributes"]["Policy"])["Statement"][0]
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{stack.uploads_bucket}"


def test_bucket_notification_and_versioning_match_template(stack: LocalStack) -> None:
    s3 = stack.client("s3")
    config = s3.get_bucket_notification_configuration(Bucket=stack.uploads_bucket)["QueueConfigurations"]
    rules = {r["Name"].lower(): r["Value"] for r in config[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "uploads/"}
    for bucket in (stack.uploads_bucket, stack.weights_bucket):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    # Bucket names follow the template's pattern (stage, then the stack id's suffix)
    assert stack.uploads_bucket.startswith("loradrop-local-uploads-")


UNSET_MEANS_NONE = {"MAX_JOB_USD", "MONTHLY_BUDGET_USD", "SAMPLE_PROMPTS"}


def test_each_function_gets_only_its_own_variables(stack: LocalStack) -> None:
    lambda_own = {"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "_HANDLER", "AWS_EXECUTION_ENV"}
    local_knobs = {"RETRY_DELAY_SCALE", "POWERTOOLS_METRICS_DISABLED"}
    for logical_id, runtime in stack.runtimes.items():
        declared = set(DEPLOYED[logical_id]["Properties"]["Environment"]["Variables"])
        given = set(stack.function_environment(logical_id))
        extra = given - declared - lambda_own - local_knobs - set(stack.options.extra_environment)
        assert all(name.startswith("AWS_LAMBDA_") for name in extra), extra
        assert declared <= given
        # every variable has a value, but one whose empty value means "none" (the limits, SamplePrompts)
        assert all(stack.function_environment(logical_id)[name] for name in declared - UNSET_MEANS_NONE)
        # and each has its own role's session, not the stack's admin keys
        assert runtime.config.environment["AWS_ACCESS_KEY_ID"] != stack.credentials["AWS_ACCESS_KEY_ID"]
    assert "WEIGHTS_BUCKET" not in stack.function_environment("ReceiveWebhookFunction")
    assert "TRAINER_MODEL" not in stack.function_environment("StoreWeightsFunction")


def test_nothing_in_the_template_is_silently_skipped(stack: LocalStack) -> None:
    created = set(stack.names) | set(stack.queue_urls)
    accounted = (
        created
        | set(stack.deployment.not_emulated)
        | set(stack.deployment.not_deployed)  # a condition the parameters make false (no NotifyEmail, say)
        | {
            name
            for name, r in DEPLOYED.items()
            if r["Type"] in ("AWS::Lambda::EventSourceMapping", "AWS::Scheduler::Schedule", "AWS::SQS::QueuePolicy")
        }
    )
    assert stack.deployment.unknown == {}
    assert set(stack.deployment.not_deployed.values()) <= {"HasAlarmEmail", "HasNotifyEmail"}
    assert set(DEPLOYED) <= accounted | {r for r in DEPLOYED if DEPLOYED[r]["Type"] == "AWS::ApiGatewayV2::Api"}


def test_objects_outside_the_uploads_prefix_start_no_job(stack: LocalStack) -> None:
    stack.client("s3").put_object(Bucket=stack.uploads_bucket, Key="elsewhere/photos.zip", Body=b"PK")
    from loradrop.jobs import JobStore

    time.sleep(1.0)  # notifications are asynchronous: give a wrong one time to arrive
    jobs = JobStore(stack.client("dynamodb"), stack.table_name).list(limit=1000)
    assert not any(j.source_key == "elsewhere/photos.zip" for j in jobs)
