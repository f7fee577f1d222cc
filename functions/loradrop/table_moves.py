"""The parts of the one conditional move every write to the jobs table is (`job_table`, `sample_table`): its
extra conditions, its UpdateItem expression, and the values in DynamoDB's JSON. Only the table modules import it."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from loradrop.budgets import is_budget_row
from loradrop.redaction import redact

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class Condition:
    """A move's extra condition, beside the expected status."""

    text: str
    values: dict[str, Any] = field(default_factory=dict)

    def __or__(self, other: Condition) -> Condition:
        return Condition(f"({self.text}) OR ({other.text})", self.values | other.values)

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"({self.text}) AND ({other.text})", self.values | other.values)


def lease_free(now: str) -> Condition:
    """No copy holds the job's lease at `now` (a copy runs until its lease ends)."""
    return Condition("attribute_not_exists(store_lease_until) OR store_lease_until < :lease_now", {":lease_now": now})


def lease_owner(owner: str | None) -> Condition:
    return Condition("store_lease_owner = :owner", {":owner": owner})


def same_error(code: str | None) -> Condition:
    """The job still failed for the reason that was looked at."""
    return Condition("error_code = :code", {":code": code})


def same_attempt(link: str | None) -> Condition | None:
    """The job is still on the attempt that was looked at (its link digest); None for a job without one."""
    return Condition("submit_url_sha256 = :link", {":link": link}) if link else None


def is_side_row(key: str) -> bool:
    """A row beside the jobs (a month's budget, a sample): no job id has a `#`."""
    return "#" in key or is_budget_row(key)


def to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def serialize(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(to_dynamo(v)) for k, v in values.items()}


def deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


@dataclass
class MoveRequest:
    """One conditional move's UpdateItem parts, for any row with a `status` and a `history` (jobs and samples)."""

    sets: list[str]
    values: dict[str, Any]
    names: dict[str, str]
    removes: list[str]
    entry: dict[str, Any]
    expected: list[str]
    add_entry: bool

    def parts(self, condition: Condition | None) -> tuple[str, str, dict[str, Any], dict[str, str]]:
        sets, values, names = list(self.sets), dict(self.values), dict(self.names)
        if self.add_entry:
            sets.append("history = list_append(if_not_exists(history, :empty), :entry)")
            values.update({":empty": [], ":entry": [self.entry]})
        expression = "SET " + ", ".join(sets)
        if self.removes:
            names |= {f"#r{i}": name for i, name in enumerate(self.removes)}
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(self.removes)))
        values |= {f":e{i}": status for i, status in enumerate(self.expected)}
        allowed = f"#status IN ({', '.join(f':e{i}' for i in range(len(self.expected)))})"
        if condition is not None:
            allowed += f" AND ({condition.text})"
            values |= condition.values
        return expression, allowed, values, names


def build_move(  # noqa: PLR0913 - every part of a move, keyword-only past the states
    expected: list[str],
    to: str,
    now: str,
    *,
    fields: dict[str, Any],
    removes: list[str],
    note: str | None = None,
    attempts: int = 0,
    count: str | None = None,
) -> MoveRequest:
    """A move to `to` from one of `expected`, setting `fields` and removing `removes`; a history entry is added when
    the status changes or a note is given. `attempts` adds to the tasks that may exist; `count` names a counter."""
    values: dict[str, Any] = {":to": to, ":now": now}
    names = {"#status": "status"}
    sets = ["#status = :to", "updated_at = :now"]
    for i, (name, value) in enumerate(fields.items()):
        names[f"#f{i}"] = name
        values[f":f{i}"] = value
        sets.append(f"#f{i} = :f{i}")
    if attempts:
        sets.append("attempts = if_not_exists(attempts, :zero) + :attempts")
        values.update({":zero": 0, ":attempts": attempts})
    if count is not None:
        names["#count"] = count
        sets.append("#count = if_not_exists(#count, :zero) + :one")
        values.update({":zero": 0, ":one": 1})
    entry: dict[str, Any] = {"status": to, "at": now}
    if note:
        entry["note"] = redact(note)
    if fields.get("prediction_id"):
        entry["prediction_id"] = fields["prediction_id"]
    add_entry = bool(note) or set(expected) != {to}  # a pure field update of the same state adds no entry
    return MoveRequest(sets, values, names, removes, entry, expected, add_entry)
