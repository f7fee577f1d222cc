"""Read template.yaml so the local stack builds what the template declares (one source of truth)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags, kept as their long forms (`!Ref x` → {"Ref": x})."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    visibility_timeout: int
    retention: int
    dead_letter: str | None = None
    max_receives: int | None = None


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    timeout: int
    environment: tuple[str, ...]
    queue: str | None = None  # logical id of the SQS event source
    batch_size: int = 10
    max_concurrency: int = 2
    http_route: tuple[str, str] | None = None  # (method, path)
    schedule: str | None = None


@dataclass
class TemplateSpec:
    raw: dict[str, Any]
    queues: dict[str, QueueSpec] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)

    def resource(self, logical_id: str) -> dict[str, Any]:
        props: dict[str, Any] = self.raw["Resources"][logical_id].get("Properties", {})
        return props

    def resolve(self, value: Any) -> Any:
        """Parameter defaults and mapping lookups; other intrinsics are the local stack's business."""
        if isinstance(value, dict) and "Ref" in value and value["Ref"] in self.raw.get("Parameters", {}):
            return self.raw["Parameters"][value["Ref"]].get("Default")
        if isinstance(value, dict) and "Fn::FindInMap" in value:
            mapping, top, second = value["Fn::FindInMap"]
            return self.raw["Mappings"][mapping][top][second]
        return value

    @property
    def table(self) -> dict[str, Any]:
        return self.resource("JobsTable")

    def bucket_notifications(self, bucket: str) -> list[dict[str, Any]]:
        config = self.resource(bucket).get("NotificationConfiguration", {})
        result: list[dict[str, Any]] = config.get("QueueConfigurations", [])
        return result

    def bucket_versioned(self, bucket: str) -> bool:
        return bool(self.resource(bucket).get("VersioningConfiguration", {}).get("Status") == "Enabled")


def read_template(path: Path = TEMPLATE_PATH) -> TemplateSpec:
    raw = load_template(path)
    spec = TemplateSpec(raw=raw)
    resources = raw["Resources"]
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::SQS::Queue":
            continue
        props = resource.get("Properties", {})
        redrive = props.get("RedrivePolicy")
        spec.queues[logical_id] = QueueSpec(
            logical_id=logical_id,
            visibility_timeout=int(props.get("VisibilityTimeout", 30)),
            retention=int(props.get("MessageRetentionPeriod", 345600)),
            dead_letter=redrive["deadLetterTargetArn"]["Fn::GetAtt"][0] if redrive else None,
            max_receives=int(spec.resolve(redrive["maxReceiveCount"])) if redrive else None,
        )
    globals_ = raw.get("Globals", {}).get("Function", {})
    global_env = tuple(globals_.get("Environment", {}).get("Variables", {}))
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        own_env = tuple(props.get("Environment", {}).get("Variables", {}))
        queue = route = schedule = None
        batch, concurrency = 10, 2
        for event in props.get("Events", {}).values():
            event_props = event.get("Properties", {})
            if event["Type"] == "SQS":
                queue = event_props["Queue"]["Fn::GetAtt"][0]
                batch = int(event_props.get("BatchSize", 10))
                concurrency = int(event_props.get("ScalingConfig", {}).get("MaximumConcurrency", 2))
            elif event["Type"] == "HttpApi":
                route = (event_props["Method"].upper(), event_props["Path"])
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                schedule = event_props["ScheduleExpression"]
        spec.functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            handler=props["Handler"],
            timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
            environment=global_env + own_env,
            queue=queue,
            batch_size=batch,
            max_concurrency=concurrency,
            http_route=route,
            schedule=schedule,
        )
    return spec


def schedule_seconds(expression: str) -> float:
    """`rate(5 minutes)` → 300."""
    amount, unit = expression.removeprefix("rate(").removesuffix(")").split()
    return float(amount) * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "second": 1}.get(unit, 1)
