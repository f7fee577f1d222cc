"""Create in moto what CloudFormation would create from the translated template, and describe for the
local runtime what moto cannot run (functions, event source mappings, schedules, the HTTP API)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from loradrop_local.aws.cloudformation import Resolver

REGION = "us-east-1"
ACCOUNT = "123456789012"

# Types the local stack does not create, and why: listed at start, never silently skipped.
NOT_EMULATED = {
    "AWS::Lambda::LayerVersion": "the dependencies come from the project's virtualenv",
    "AWS::Lambda::Permission": "API Gateway and the scheduler may always invoke locally",
    "AWS::Logs::LogGroup": "function output goes to the stack's log file",
    "AWS::KMS::Key": "moto has no key policies to enforce",
    "AWS::SNS::TopicPolicy": "topic policies are not evaluated (EventBridge delivers to a topic's local inbox)",
    "AWS::CloudWatch::Alarm": "alarms are not evaluated locally",
    "AWS::S3::BucketPolicy": "moto cannot tell TLS from plain HTTP, so aws:SecureTransport would deny all",
    "AWS::ApiGatewayV2::Stage": "the local HTTP front serves the $default stage",
}


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    timeout: float
    memory: int
    environment: dict[str, str]
    role_arn: str
    reserved_concurrency: int | None


@dataclass(frozen=True)
class QueueSource:
    function: str
    queue: str  # logical id
    batch_size: int
    max_concurrency: int | None


@dataclass(frozen=True)
class StreamSource:
    """A DynamoDB stream event source mapping, as the poller plays it."""

    function: str
    table: str  # logical id
    stream_arn: str
    batch_size: int
    filters: list[dict[str, Any]]  # FilterCriteria patterns (any one matches)
    max_retries: int  # -1: until the record expires
    on_failure: str | None  # the on-failure destination's queue ARN


@dataclass
class Deployment:
    stack_name: str
    names: dict[str, str] = field(default_factory=dict)  # logical id → physical name
    queue_urls: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    queue_sources: list[QueueSource] = field(default_factory=list)
    stream_sources: list[StreamSource] = field(default_factory=list)
    schedules: dict[str, str] = field(default_factory=dict)  # function → expression
    routes: dict[tuple[str, str], str] = field(default_factory=dict)  # (method, path) → function
    api_ids: list[str] = field(default_factory=list)
    # topic logical id → the queue standing in for its subscribers (what an email would say lands there)
    inboxes: dict[str, str] = field(default_factory=dict)
    not_emulated: dict[str, str] = field(default_factory=dict)  # logical id → type: reason
    not_deployed: dict[str, str] = field(default_factory=dict)  # logical id → its false condition
    unknown: dict[str, str] = field(default_factory=dict)  # logical id → type


class Provisioner:
    def __init__(
        self,
        template: dict[str, Any],
        resolver: Resolver,
        client: Callable[[str], Any],
        stack_name: str,
        time_scale: float,
    ) -> None:
        self.template = template
        self.resolver = resolver
        self.client = client
        self.time_scale = time_scale
        self.deployment = Deployment(stack_name)
        self._topic_arns: dict[str, str] = {}  # ARN → logical id

    def props(self, logical_id: str) -> dict[str, Any]:
        resource = self.template["Resources"][logical_id]
        properties: dict[str, Any] = resource.get("Properties", {})
        return properties

    def of_type(self, *types: str) -> list[str]:
        return [
            logical_id
            for logical_id, resource in self.template["Resources"].items()
            if resource["Type"] in types
            and ("Condition" not in resource or self.resolver.condition(resource["Condition"]))
        ]

    def _generated_name(self, logical_id: str, limit: int = 80) -> str:
        return f"{self.deployment.stack_name}-{logical_id}"[:limit]

    def run(self) -> Deployment:
        handlers: dict[str, Callable[[str], None]] = {
            "AWS::DynamoDB::Table": self.table,
            "AWS::SQS::Queue": self.queue,
            "AWS::SQS::QueuePolicy": self.queue_policy,
            "AWS::Events::EventBus": self.event_bus,
            "AWS::S3::Bucket": self.bucket,
            "AWS::ApiGatewayV2::Api": self.api,
            "AWS::IAM::Role": self.role,
            "AWS::Lambda::Function": self.function,
            "AWS::Lambda::EventSourceMapping": self.event_source,
            "AWS::Scheduler::Schedule": self.schedule,
            "AWS::SNS::Topic": self.topic,
            "AWS::SNS::Subscription": self.subscription,
            "AWS::Events::Rule": self.rule,
        }
        # Dependencies first: DLQs before the queues naming them, queues before the bucket that
        # notifies one, resources before the roles whose policies name them, roles before functions.
        order = [
            "AWS::DynamoDB::Table",
            "AWS::SQS::Queue",
            "AWS::SQS::QueuePolicy",
            "AWS::Events::EventBus",
            "AWS::SNS::Topic",
            "AWS::SNS::Subscription",
            "AWS::Events::Rule",
            "AWS::S3::Bucket",
            "AWS::ApiGatewayV2::Api",
            "AWS::IAM::Role",
            "AWS::Lambda::Function",
            "AWS::Lambda::EventSourceMapping",
            "AWS::Scheduler::Schedule",
        ]
        # A function's name and ARN are known before it exists (the scheduler's role names them).
        for logical_id in self.of_type("AWS::Lambda::Function"):
            name = self.props(logical_id).get("FunctionName") or self._generated_name(logical_id, 64)
            self.resolver.created(logical_id, name, Arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")
        queues = self.of_type("AWS::SQS::Queue")
        queues.sort(key=lambda q: "RedrivePolicy" in self.props(q))
        for kind in order:
            for logical_id in queues if kind == "AWS::SQS::Queue" else self.of_type(kind):
                handlers[kind](logical_id)
        for logical_id, resource in self.template["Resources"].items():
            kind = resource["Type"]
            if "Condition" in resource and not self.resolver.condition(resource["Condition"]):
                self.deployment.not_deployed[logical_id] = resource["Condition"]  # as CloudFormation would
            elif kind in NOT_EMULATED:
                self.deployment.not_emulated[logical_id] = f"{kind}: {NOT_EMULATED[kind]}"
            elif kind not in handlers:
                self.deployment.unknown[logical_id] = kind
        return self.deployment

    # ----- resources moto holds -----
    def table(self, logical_id: str) -> None:
        props = self.resolver.resolve(self.props(logical_id))
        name = props.get("TableName") or self._generated_name(logical_id)
        arguments = {
            key: props[key]
            for key in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes", "BillingMode")
            if key in props
        }
        if "StreamSpecification" in props:  # CloudFormation names the view type only; the API wants it enabled too
            arguments["StreamSpecification"] = {"StreamEnabled": True} | props["StreamSpecification"]
        description = self.client("dynamodb").create_table(TableName=name, **arguments)["TableDescription"]
        self.deployment.names[logical_id] = name
        self.resolver.created(
            logical_id, name, Arn=description["TableArn"], StreamArn=description.get("LatestStreamArn", "")
        )

    def queue(self, logical_id: str) -> None:
        props = self.resolver.resolve(self.props(logical_id))
        name = props.get("QueueName") or self._generated_name(logical_id)
        attributes = {"MessageRetentionPeriod": str(props.get("MessageRetentionPeriod", 345600))}
        # Time compression: visibility timeouts shrink with the stack's time scale (at least 1 s).
        attributes["VisibilityTimeout"] = str(max(1, round(int(props.get("VisibilityTimeout", 30)) * self.time_scale)))
        if "SqsManagedSseEnabled" in props:
            attributes["SqsManagedSseEnabled"] = str(props["SqsManagedSseEnabled"]).lower()
        if "RedrivePolicy" in props:
            redrive = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": redrive["deadLetterTargetArn"],
                    "maxReceiveCount": int(redrive["maxReceiveCount"]),
                }
            )
        url = self.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        self.deployment.names[logical_id] = name
        self.deployment.queue_urls[logical_id] = url
        self.resolver.created(logical_id, url, Arn=arn, QueueName=name, QueueUrl=url)

    def queue_policy(self, logical_id: str) -> None:
        """Set as CloudFormation would; moto delivers S3 notifications without evaluating it."""
        props = self.resolver.resolve(self.props(logical_id))
        for url in props["Queues"]:
            self.client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )

    def event_bus(self, logical_id: str) -> None:
        props = self.resolver.resolve(self.props(logical_id))
        arn = self.client("events").create_event_bus(Name=props["Name"])["EventBusArn"]
        self.deployment.names[logical_id] = props["Name"]
        self.resolver.created(logical_id, props["Name"], Arn=arn, Name=props["Name"])

    def topic(self, logical_id: str) -> None:
        """The topic itself (its key is not emulated); what it would deliver goes to its local inbox."""
        name = self.props(logical_id).get("TopicName") or self._generated_name(logical_id, 256)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        inbox = f"{logical_id}Inbox"
        url = self.client("sqs").create_queue(QueueName=self._generated_name(inbox))["QueueUrl"]
        self.deployment.names[logical_id] = name
        self.deployment.queue_urls[inbox] = url
        self.deployment.inboxes[logical_id] = inbox
        self._topic_arns[arn] = logical_id
        self.resolver.created(logical_id, arn, TopicArn=arn, TopicName=name)

    def subscription(self, logical_id: str) -> None:
        props = self.resolver.resolve(self.props(logical_id))
        self.client("sns").subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"])

    def rule(self, logical_id: str) -> None:
        """The rule on its bus. moto's EventBridge cannot deliver to SNS, so a topic target is pointed at the
        topic's inbox queue, with the same input transformer (a plain-text template wrapped as
        {"message": ...}: moto handles only JSON objects)."""
        props = self.resolver.resolve(self.props(logical_id))
        name = props.get("Name") or self._generated_name(logical_id, 64)
        events = self.client("events")
        bus = props.get("EventBusName", "default")
        arn = events.put_rule(
            Name=name,
            EventBusName=bus,
            EventPattern=json.dumps(props["EventPattern"]),
            State=props.get("State", "ENABLED"),
        )["RuleArn"]
        targets = []
        for declared in props.get("Targets", []):
            target = dict(declared)
            topic = self._topic_arns.get(target["Arn"])
            if topic is not None:
                inbox = self.deployment.inboxes[topic]
                target["Arn"] = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{self._generated_name(inbox)}"
                transformer = target.get("InputTransformer", {})
                if str(transformer.get("InputTemplate", "")).startswith('"'):
                    template = f'{{"message": {transformer["InputTemplate"]}}}'
                    target["InputTransformer"] = transformer | {"InputTemplate": template}
            targets.append(target)
        if targets:
            events.put_targets(Rule=name, EventBusName=bus, Targets=targets)
        self.deployment.names[logical_id] = name
        self.resolver.created(logical_id, name, Arn=arn)

    def bucket(self, logical_id: str) -> None:
        props = self.resolver.resolve(self.props(logical_id))
        name = props.get("BucketName") or self._generated_name(logical_id, 63).lower()
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if props.get("PublicAccessBlockConfiguration"):
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if props.get("BucketEncryption"):
            s3.put_bucket_encryption(
                Bucket=name,
                ServerSideEncryptionConfiguration={
                    "Rules": [  # CloudFormation's property names differ from the API's here
                        {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                    ]
                },
            )
        queue_configs = [
            {
                "QueueArn": config["Queue"],
                "Events": [config["Event"]],
                "Filter": {"Key": {"FilterRules": config["Filter"]["S3Key"]["Rules"]}},
            }
            for config in props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        ]
        if queue_configs:
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": queue_configs}
            )
        self.deployment.names[logical_id] = name
        self.resolver.created(logical_id, name, Arn=f"arn:aws:s3:::{name}", DomainName=f"{name}.s3.amazonaws.com")

    def role(self, logical_id: str) -> None:
        props = self.resolver.resolve(self.props(logical_id))
        name = props.get("RoleName") or self._generated_name(logical_id, 64)
        iam = self.client("iam")
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]))[
            "Role"
        ]["Arn"]
        for policy in props.get("Policies", []):
            # IAM reads a document without Version as 2008-10-17; moto refuses it, so name the newer
            # version (the same meaning for policies without ${aws:...} variables, as these are).
            document = {"Version": "2012-10-17"} | policy["PolicyDocument"]
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        for policy_arn in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        self.deployment.names[logical_id] = name
        self.resolver.created(logical_id, name, Arn=arn)

    # ----- what the local runtime plays -----
    def api(self, logical_id: str) -> None:
        api_id = f"local{len(self.deployment.api_ids)}"
        self.deployment.api_ids.append(api_id)
        self.resolver.created(logical_id, api_id, ApiEndpoint=f"https://{api_id}.execute-api.{REGION}.amazonaws.com")
        body = self.props(logical_id).get("Body", {})
        for path, methods in body.get("paths", {}).items():
            for method, operation in methods.items():
                uri = operation.get("x-amazon-apigateway-integration", {}).get("uri", {})
                match = re.search(r"\$\{(\w+)\.Arn\}", json.dumps(uri))
                if match:
                    self.deployment.routes[(method.upper(), path)] = match.group(1)

    def function(self, logical_id: str) -> None:
        props = self.props(logical_id)
        name = props.get("FunctionName") or self._generated_name(logical_id, 64)
        variables = self.resolver.resolve(props.get("Environment", {}).get("Variables", {}))
        reserved = props.get("ReservedConcurrentExecutions")
        self.deployment.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            handler=props["Handler"],
            timeout=float(props.get("Timeout", 3)),
            memory=int(props.get("MemorySize", 128)),
            environment={key: str(value) for key, value in variables.items()},
            role_arn=self.resolver.resolve(props["Role"]),
            reserved_concurrency=int(reserved) if reserved is not None else None,
        )
        self.deployment.names[logical_id] = name

    def event_source(self, logical_id: str) -> None:
        props = self.props(logical_id)
        source, attribute = props["EventSourceArn"]["Fn::GetAtt"]
        function = props["FunctionName"]["Ref"]
        if attribute == "StreamArn":
            destination = self.resolver.resolve(props.get("DestinationConfig", {})).get("OnFailure", {})
            self.deployment.stream_sources.append(
                StreamSource(
                    function=function,
                    table=source,
                    stream_arn=self.resolver.resolve(props["EventSourceArn"]),
                    batch_size=int(props.get("BatchSize", 100)),
                    filters=[json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])],
                    max_retries=int(props.get("MaximumRetryAttempts", -1)),
                    on_failure=destination.get("Destination"),
                )
            )
            return
        queue = source
        scaling = self.resolver.resolve(props.get("ScalingConfig", {}))
        self.deployment.queue_sources.append(
            QueueSource(
                function=function,
                queue=queue,
                batch_size=int(props.get("BatchSize", 10)),
                max_concurrency=int(scaling["MaximumConcurrency"]) if "MaximumConcurrency" in scaling else None,
            )
        )

    def schedule(self, logical_id: str) -> None:
        props = self.props(logical_id)
        function = props["Target"]["Arn"]["Fn::GetAtt"][0]
        self.deployment.schedules[function] = props["ScheduleExpression"]


def schedule_seconds(expression: str) -> float:
    """`rate(5 minutes)` → 300."""
    amount, unit = expression.removeprefix("rate(").removesuffix(")").split()
    return float(amount) * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "second": 1}.get(unit, 1)
