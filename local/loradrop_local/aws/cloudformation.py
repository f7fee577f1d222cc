"""template.yaml as CloudFormation would deploy it: translated by the SAM translator (the package SAM CLI
uses), then resolved with the local stack's parameter values and physical names."""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[3]
TEMPLATE_PATH = PROJECT_ROOT / "template.yaml"
PSEUDO_STACK_NAME = "AWS::StackName"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags, kept as their long forms (`!Ref x` → {"Ref": x})."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
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


class _ManagedPolicies:
    """The translator asks IAM for managed policy ARNs only for names it does not know; the template
    names none, so no AWS call is made."""

    def load(self) -> dict[str, str]:
        return {}


def translate(path: Path = TEMPLATE_PATH, region: str = "us-east-1") -> dict[str, Any]:
    """The CloudFormation template SAM would deploy. Local code paths become S3 placeholders first, as
    `sam validate` does (the translator accepts only S3 URIs)."""
    from samtranslator.translator.transform import transform

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # it warns of metrics it never publishes
    sam = load_template(path)
    sam.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function":
            props["CodeUri"] = "s3://local/functions"
        elif resource["Type"] == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = "s3://local/layer"
    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region  # the translator reads the region from boto's session
    try:
        return transform(sam, {}, _ManagedPolicies())
    finally:
        if saved is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved


class Unresolvable(Exception):
    pass


class Resolver:
    """Evaluates CloudFormation's intrinsic functions. `refs` and `attributes` hold what the resources
    created so far answer to `Ref` and `Fn::GetAtt`."""

    def __init__(self, template: dict[str, Any], parameters: dict[str, str], pseudo: dict[str, str]) -> None:
        self.template = template
        self.values: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            if name in parameters:
                self.values[name] = parameters[name]
            elif "Default" in spec:
                self.values[name] = spec["Default"]
        unknown = set(parameters) - set(template.get("Parameters", {}))
        if unknown:
            raise Unresolvable(f"parameters not in the template: {sorted(unknown)}")
        self.values |= pseudo
        self.attributes: dict[tuple[str, str], Any] = {}
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            function = self._functions().get(key)
            if function is not None:
                return function(argument)
        return {k: self.resolve(v) for k, v in value.items()}

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": lambda a: str(self.resolve(a[0])).join(str(v) for v in self.resolve(a[1])),
            "Fn::Select": lambda a: self.resolve(a[1])[int(self.resolve(a[0]))],
            "Fn::Split": lambda a: str(self.resolve(a[1])).split(str(self.resolve(a[0]))),
            "Fn::FindInMap": lambda a: self.template["Mappings"][self.resolve(a[0])][self.resolve(a[1])][
                self.resolve(a[2])
            ],
            "Fn::If": lambda a: self.resolve(a[1] if self.condition(a[0]) else a[2]),
            "Fn::Equals": lambda a: str(self.resolve(a[0])) == str(self.resolve(a[1])),
            "Fn::Not": lambda a: not self.resolve(a[0]),
            "Fn::And": lambda a: all(self.resolve(v) for v in a),
            "Fn::Or": lambda a: any(self.resolve(v) for v in a),
            "Condition": self.condition,
        }

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return None
        if name not in self.values:
            raise Unresolvable(f"Ref {name}: not created yet")
        return self.values[name]

    def _get_att(self, argument: Any) -> Any:
        logical_id, attribute = argument if isinstance(argument, list) else str(argument).split(".", 1)
        if (logical_id, attribute) not in self.attributes:
            raise Unresolvable(f"GetAtt {logical_id}.{attribute}: not created yet")
        return self.attributes[(logical_id, attribute)]

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        local = {name: self.resolve(value) for name, value in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self._get_att(name.split(".", 1)))
            return str(self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def created(self, logical_id: str, ref: Any, **attributes: Any) -> None:
        self.values[logical_id] = ref
        for name, value in attributes.items():
            self.attributes[(logical_id, name)] = value


def resources_of(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: copy.deepcopy(resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] in types
    }
