"""The template's own values: what cfn-lint and `sam validate --lint` do not check."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from loradrop_local.aws.cloudformation import PROJECT_ROOT, Resolver, load_template, translate

TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
# What CloudFormation deploys: the SAM translator's output.
DEPLOYED: dict[str, Any] = translate()["Resources"]
MAPPINGS = Resolver({"Mappings": TEMPLATE["Mappings"]}, {}, {})


def timeout(function: str) -> int:
    return int(DEPLOYED[function]["Properties"]["Timeout"])


def queue_of(function: str) -> str | None:
    for resource in DEPLOYED.values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::EventSourceMapping" and props["FunctionName"] == {"Ref": function}:
            source, attribute = props["EventSourceArn"]["Fn::GetAtt"]
            return str(source) if attribute == "Arn" else None  # a queue's, not a stream's
    return None


def redrive(queue: str) -> dict[str, Any]:
    policy: dict[str, Any] = DEPLOYED[queue]["Properties"].get("RedrivePolicy", {})
    return policy


FUNCTIONS = {
    "SubmitTrainingFunction": "functions/submit_training/app.py",
    "ReceiveWebhookFunction": "functions/receive_webhook/app.py",
    "StoreWeightsFunction": "functions/store_weights/app.py",
    "ReconcileJobsFunction": "functions/reconcile_jobs/app.py",
    "PublishEventsFunction": "functions/publish_events/app.py",
}
CONTRACT_ENV = {
    "JOBS_TABLE",
    "WEIGHTS_BUCKET",
    "WEIGHTS_PREFIX",
    "STORE_QUEUE_URL",
    "EVENT_BUS_NAME",
    "WAVESPEED_API_BASE",
    "WAVESPEED_SECRET_ID",
    "WEBHOOK_URL",
    "TRAINER_MODEL",
    "OUTPUT_HOSTS",
}


def of_type(kind: str) -> dict[str, Any]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] == kind}


def statements(function: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for policy in RESOURCES[function]["Properties"].get("Policies", []):
        found.extend(policy["Statement"])
    return found


def actions(function: str) -> set[str]:
    result: set[str] = set()
    for statement in statements(function):
        value = statement["Action"]
        result.update([value] if isinstance(value, str) else value)
    return result


def test_functions_match_the_contract() -> None:
    assert set(of_type("AWS::Serverless::Function")) == set(FUNCTIONS)
    assert TEMPLATE["Globals"]["Function"]["Runtime"] == "python3.13"
    for name, path in FUNCTIONS.items():
        props = RESOURCES[name]["Properties"]
        module, handler = props["Handler"].rsplit(".", 1)
        assert (PROJECT_ROOT / "functions" / (module.replace(".", "/") + ".py")) == PROJECT_ROOT / path
        assert callable(getattr(importlib.import_module(module), handler))
        assert 1 <= timeout(name) <= 900


def test_contract_environment_is_set() -> None:
    provided = {name for f in FUNCTIONS for name in DEPLOYED[f]["Properties"]["Environment"]["Variables"]}
    assert provided >= CONTRACT_ENV


def test_queue_visibility_covers_the_consumer_timeout() -> None:
    for function in FUNCTIONS:
        queue = queue_of(function)
        if queue:
            assert DEPLOYED[queue]["Properties"]["VisibilityTimeout"] >= 6 * timeout(function)


def _alarmed_queues() -> set[str]:
    return {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["Namespace"] == "AWS/SQS"
    }


def test_every_queue_has_a_dead_letter_queue_with_an_alarm() -> None:
    sources = [name for name, r in DEPLOYED.items() if r["Type"] == "AWS::SQS::Queue" and redrive(name)]
    assert set(sources) == {"IntakeQueue", "StoreQueue"}
    for queue in sources:
        assert redrive(queue)["deadLetterTargetArn"]["Fn::GetAtt"][0] in _alarmed_queues()
        assert int(MAPPINGS.resolve(redrive(queue)["maxReceiveCount"])) >= 3


def test_job_events_follow_the_tables_change_stream_and_what_cannot_be_published_is_alarmed() -> None:
    table = DEPLOYED["JobsTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}  # the move, not only the end
    (mapping,) = [
        r["Properties"]
        for r in DEPLOYED.values()
        if r["Type"] == "AWS::Lambda::EventSourceMapping"
        and r["Properties"]["FunctionName"] == {"Ref": "PublishEventsFunction"}
    ]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["JobsTable", "StreamArn"]}
    assert mapping["StartingPosition"] == "TRIM_HORIZON"  # no end recorded before the mapping existed is skipped
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["MaximumRetryAttempts"] > 0
    assert mapping["MaximumRecordAgeInSeconds"] <= 86400
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert sorted(pattern["dynamodb"]["NewImage"]["status"]["S"]) == ["COMPLETED", "FAILED", "REJECTED"]
    failures = mapping["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert failures in _alarmed_queues()
    # only the publisher may put events; the functions that end jobs only write the table
    assert [f for f in FUNCTIONS if "events:PutEvents" in actions(f)] == ["PublishEventsFunction"]


def test_webhook_function_answers_before_its_timeout() -> None:
    env = RESOURCES["ReceiveWebhookFunction"]["Properties"]["Environment"]["Variables"]
    budget = int(env["WAVESPEED_RESULT_TRIES"]) * int(env["WAVESPEED_RESULT_TIMEOUT_SECONDS"]) + 5  # + connect, work
    assert budget < timeout("ReceiveWebhookFunction")


def test_store_function_gives_up_when_the_queue_does() -> None:
    env = RESOURCES["StoreWeightsFunction"]["Properties"]["Environment"]["Variables"]
    assert MAPPINGS.resolve(env["STORE_MAX_RECEIVES"]) == MAPPINGS.resolve(redrive("StoreQueue")["maxReceiveCount"])


def test_least_privilege() -> None:
    for name in FUNCTIONS:
        for statement in statements(name):
            assert statement["Effect"] == "Allow"
            assert "*" not in json.dumps(statement["Action"])
            assert statement["Resource"] != "*"
    assert not any(a.startswith("s3:") for a in actions("ReceiveWebhookFunction"))
    assert not any(a.startswith("s3:") for a in actions("ReconcileJobsFunction"))
    assert actions("PublishEventsFunction") == {"events:PutEvents"}  # the stream's read comes with SAM's policy
    assert not any(
        a.startswith("dynamodb:") and a not in ("dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query")
        for a in actions("ReceiveWebhookFunction")
    )
    assert "s3:PutObject" not in actions("SubmitTrainingFunction")
    assert "dynamodb:Scan" not in set().union(*(actions(f) for f in FUNCTIONS))


@pytest.mark.parametrize("bucket", ["UploadsBucket", "WeightsBucket"])
def test_buckets_are_private_encrypted_versioned_and_tls_only(bucket: str) -> None:
    props = RESOURCES[bucket]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    rules = props["LifecycleConfiguration"]["Rules"]
    assert any("AbortIncompleteMultipartUpload" in r for r in rules)
    (policy,) = [r for r in of_type("AWS::S3::BucketPolicy").values() if r["Properties"]["Bucket"] == {"Ref": bucket}]
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_upload_notifies_the_intake_queue_whatever_its_name() -> None:
    (config,) = DEPLOYED["UploadsBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert config["Queue"] == {"Fn::GetAtt": ["IntakeQueue", "Arn"]}
    # No suffix rule: S3 matches suffixes case-sensitively, and an unnoticed upload is worse than a rejection
    assert {r["Name"]: r["Value"] for r in config["Filter"]["S3Key"]["Rules"]} == {"prefix": "uploads/"}


def test_table_has_recovery_and_the_indexes_the_flows_need() -> None:
    table = DEPLOYED["JobsTable"]["Properties"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in table["GlobalSecondaryIndexes"]}
    assert indexes == {"by-prediction": ["prediction_id"], "by-status": ["status", "updated_at"]}


def test_every_function_has_a_log_group_with_retention() -> None:
    groups = of_type("AWS::Logs::LogGroup").values()
    named = {json.dumps(g["Properties"].get("LogGroupName")) for g in groups}
    for name in FUNCTIONS:
        assert any(name in n for n in named)
    assert all("RetentionInDays" in g["Properties"] for g in groups)


def test_outputs_for_users_and_tools() -> None:
    assert set(TEMPLATE["Outputs"]) >= {
        "UploadsBucketName",
        "WeightsBucketName",
        "WebhookUrl",
        "JobsTableName",
        "IntakeQueueUrl",
        "StoreQueueUrl",
        "EventBusName",
    }


def test_parameters_name_secrets_never_hold_them() -> None:
    for name, parameter in TEMPLATE["Parameters"].items():
        assert "Key" not in name or name.endswith("Name"), name
        assert "whsec_" not in str(parameter.get("Default", ""))


def test_layer_pins_every_dependency() -> None:
    lines = [
        line.strip()
        for line in (Path(PROJECT_ROOT) / "layers/deps/requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pinned = {line.split("==")[0] for line in lines}
    assert pinned == {"boto3", "botocore", "httpx", "pydantic", "aws-lambda-powertools"}
    assert all("==" in line for line in lines)


def test_every_alarm_reaches_a_topic_cloudwatch_can_publish_to() -> None:
    """CloudWatch publishes as cloudwatch.amazonaws.com: an encrypted topic needs a key whose policy lets
    it encrypt (the AWS-managed aws/sns key cannot), or no alarm ever notifies anyone."""
    alarms = of_type("AWS::CloudWatch::Alarm")
    assert alarms
    for name, alarm in alarms.items():
        actions = alarm["Properties"].get("AlarmActions", [])
        assert actions, f"{name} notifies nobody"
        for action in actions:
            topic = RESOURCES[action["Ref"]]
            assert topic["Type"] == "AWS::SNS::Topic"
            key_ref = topic["Properties"].get("KmsMasterKeyId")
            if key_ref is None:
                continue
            assert isinstance(key_ref, dict), f"{action['Ref']} uses a fixed key ({key_ref}) CloudWatch cannot use"
            assert key_admits(key_ref, "cloudwatch.amazonaws.com"), f"{action['Ref']}'s key shuts CloudWatch out"


def key_admits(key_ref: dict[str, Any], service: str) -> bool:
    """Whether the key's policy lets `service` encrypt to a topic under it."""
    key = RESOURCES[key_ref.get("Ref") or key_ref["Fn::GetAtt"][0]]
    assert key["Type"] == "AWS::KMS::Key"
    granted = set()
    for statement in key["Properties"]["KeyPolicy"]["Statement"]:
        if statement["Effect"] == "Allow" and statement["Principal"].get("Service") == service:
            granted.update([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    return {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted


def test_job_notifications_reach_an_encrypted_topic_eventbridge_may_use_with_fields_every_event_has() -> None:
    from loradrop.job import Job
    from loradrop.models import TERMINAL_STATUSES

    rule = RESOURCES["JobNotificationRule"]
    assert rule["Condition"] == "HasNotifyEmail"
    assert rule["Properties"]["EventPattern"]["detail-type"] == ["Job Completed", "Job Failed", "Job Rejected"]
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": "NotificationTopic"}
    topic = RESOURCES["NotificationTopic"]
    assert key_admits(topic["Properties"]["KmsMasterKeyId"], "events.amazonaws.com")
    (grant,) = RESOURCES["NotificationTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (grant["Principal"], grant["Action"]) == ({"Service": "events.amazonaws.com"}, "sns:Publish")
    assert grant["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        {"Fn::GetAtt": ["JobNotificationRule", "Arn"]},
        {"Fn::GetAtt": ["SamplesNotificationRule", "Arn"]},
    ]
    # Every variable the message uses is in every terminal event's detail, whatever the job
    paths = target["InputTransformer"]["InputPathsMap"]
    for status in TERMINAL_STATUSES:
        detail = Job(
            job_id="j", status=status, source_bucket="b", source_key="uploads/a.zip", created_at="t", updated_at="t"
        ).event_detail()
        assert all(path.removeprefix("$.detail.") in detail for path in paths.values()), status
    # The sample images' event reaches the same topic, with fields a completed job with samples has
    samples = RESOURCES["SamplesNotificationRule"]
    assert (samples["Condition"], samples["Properties"]["EventPattern"]["detail-type"]) == (
        "HasNotifyEmail",
        ["Samples Ready"],
    )
    (target,) = samples["Properties"]["Targets"]
    assert target["Arn"] == {"Ref": "NotificationTopic"}
    detail = Job(
        job_id="j",
        status="COMPLETED",
        source_bucket="b",
        source_key="uploads/a.zip",
        created_at="t",
        updated_at="t",
        samples=[{"index": 0, "image_uri": "s3://w/loras/j/samples/1.png"}],
    ).event_detail()
    assert all(
        path.removeprefix("$.detail.") in detail for path in target["InputTransformer"]["InputPathsMap"].values()
    )
    assert "s3://w/loras/j/samples/1.png" in detail["summary"]


def test_alarms_cover_errors_stuck_jobs_uncertain_submissions_and_dead_letters() -> None:
    alarms = of_type("AWS::CloudWatch::Alarm").values()
    errors = {
        a["Properties"]["Dimensions"][0]["Value"]["Ref"] for a in alarms if a["Properties"]["MetricName"] == "Errors"
    }
    assert errors == set(FUNCTIONS)
    metrics = {
        a["Properties"]["MetricName"]: a["Properties"] for a in alarms if a["Properties"]["Namespace"] == "loradrop"
    }
    assert {"OldestWaitingJobAgeSeconds", "SubmitUncertain", "ReconcileErrors", "StrayTasks"} <= set(metrics)
    # no figure from the reconciler (it could not list the jobs, or did not run) is a problem, never "all clear"
    assert metrics["OldestWaitingJobAgeSeconds"]["TreatMissingData"] == "breaching"


def test_submit_function_outlasts_one_survey_and_one_sdk_length_post() -> None:
    from loradrop.dataset import SURVEY_SECONDS
    from loradrop.wavespeed import SDK_CONNECT_TIMEOUT, SDK_SUBMIT_TIMEOUT

    # The handler takes an upload only with survey + connect + submit timeout + 15 s left; it must fit one.
    assert timeout("SubmitTrainingFunction") >= SURVEY_SECONDS + SDK_CONNECT_TIMEOUT + SDK_SUBMIT_TIMEOUT + 15 + 30


SETTINGS_OF = {
    "SubmitTrainingFunction": "SubmitSettings",
    "ReceiveWebhookFunction": "WebhookSettings",
    "StoreWeightsFunction": "StoreSettings",
    "ReconcileJobsFunction": "ReconcileSettings",
    "PublishEventsFunction": "EventsSettings",
}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gets_exactly_the_variables_its_settings_read(function: str) -> None:
    from loradrop import settings

    fields = getattr(settings, SETTINGS_OF[function]).model_fields.values()
    reads = {field.alias for field in fields}
    required = {field.alias for field in fields if field.is_required()}
    given = set(DEPLOYED[function]["Properties"]["Environment"]["Variables"])
    own = {name for name in given if not name.startswith("POWERTOOLS_") and name != "AWS_ENDPOINT_URL"}  # botocore's
    assert own <= reads, f"{function} is given variables it never reads: {sorted(own - reads)}"
    assert required <= own, f"{function} lacks variables it needs: {sorted(required - own)}"


@pytest.mark.parametrize("tier", ["Bronze", "Silver", "Gold", "Ultra"])
def test_each_tier_gets_submitters_and_a_webhook_throttle_that_keep_up_with_its_starts(tier: str) -> None:
    limits = TEMPLATE["Mappings"]["Tiers"][tier]
    per_second = limits["StartsPerMinute"] / 60
    # Each submission waits about a second for WaveSpeed's answer: enough submitters to use the tier
    assert limits["SubmitConcurrency"] >= max(2, per_second * 1.0)
    # Every started task ends with a webhook (and WaveSpeed may retry each): the route must not throttle them
    assert limits["WebhookRate"] >= 2 * per_second
    assert limits["WebhookBurst"] >= limits["WebhookRate"]
    stage = DEPLOYED["WebhookApiApiGatewayDefaultStage"]["Properties"]["DefaultRouteSettings"]
    assert stage["ThrottlingRateLimit"] == {"Fn::FindInMap": ["Tiers", {"Ref": "WaveSpeedTier"}, "WebhookRate"]}
    mapping = DEPLOYED["SubmitTrainingFunctionUploads"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    assert mapping == {"Fn::FindInMap": ["Tiers", {"Ref": "WaveSpeedTier"}, "SubmitConcurrency"]}


def test_sam_local_can_point_the_functions_at_the_local_stack_and_aws_is_untouched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`sam local` overrides only the variables a function declares: every function declares AWS_ENDPOINT_URL,
    from a parameter that is empty unless `sam local` is given one; botocore ignores an empty endpoint."""
    import boto3

    assert TEMPLATE["Parameters"]["LocalEndpoint"]["Default"] == ""
    for name in FUNCTIONS:
        assert DEPLOYED[name]["Properties"]["Environment"]["Variables"]["AWS_ENDPOINT_URL"] == {"Ref": "LocalEndpoint"}
    monkeypatch.setenv("AWS_ENDPOINT_URL", "")  # as every function has it in AWS
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    assert client.meta.endpoint_url == "https://s3.amazonaws.com"
