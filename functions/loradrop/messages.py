"""The messages loradrop's queues carry, defined once: the senders build them and the handlers read them
with the same models. Anything else on a queue is malformed: it is logged and dead-lettered quickly."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

_ID = Field(min_length=1, max_length=256)


class StoreRequest(BaseModel):
    """Store queue: copy this task's weights for this job."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    job_id: str = _ID
    prediction_id: str = _ID


class SampleRequest(BaseModel):
    """Store queue: work on this job's sample (`loradrop.samples`): submit it, copy its image, or, once every
    sample ended, sum them up on the job."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    job_id: str = _ID
    sample: int = Field(ge=0, lt=16)


class SubmitRequest(BaseModel):
    """Intake queue: submit this job again (`resubmit`, after a retryable failure or a proven loss) or on a
    person's `loradrop retry` of a FAILED job (`retry`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    job_id: str = _ID
    action: Literal["resubmit", "retry"]


class S3Notification(BaseModel):
    """Intake queue: S3's ObjectCreated notification (its records are read by UploadRef)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    Records: list[dict[str, Any]] = Field(min_length=1)


class S3TestEvent(BaseModel):
    """Intake queue: the test message S3 sends when the notification is configured."""

    model_config = ConfigDict(extra="allow", frozen=True)
    Event: Literal["s3:TestEvent"]


IntakeMessage = SubmitRequest | S3TestEvent | S3Notification


def _intake_kind(value: Any) -> type[IntakeMessage]:
    """Which model an intake message is, by the one field that tells (a tagged union by hand: pydantic's
    TypeAdapter for it cost ~15 ms of every SubmitTraining cold start)."""
    if isinstance(value, dict):
        if "action" in value:
            return SubmitRequest
        if value.get("Event") == "s3:TestEvent":
            return S3TestEvent
    return S3Notification


class MalformedMessage(ValueError):
    """A queue message no model accepts. Retrying cannot fix it."""


def _problems(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in err.errors()[:5])


def read_intake(body: str) -> IntakeMessage:
    problem = "not an S3 notification, resubmit or retry request"
    try:
        value = json.loads(body)
    except ValueError as err:
        raise MalformedMessage(f"{problem}: body: not JSON ({err})") from err
    try:
        return _intake_kind(value).model_validate(value)
    except ValidationError as err:
        raise MalformedMessage(f"{problem}: {_problems(err)}") from err


def read_store(body: str) -> StoreRequest | SampleRequest:
    try:
        value = json.loads(body)
    except ValueError as err:
        raise MalformedMessage(f"not a store or sample request: body: not JSON ({err})") from err
    kind = SampleRequest if isinstance(value, dict) and "sample" in value else StoreRequest
    try:
        return kind.model_validate(value)
    except ValidationError as err:
        raise MalformedMessage(f"not a store or sample request: {_problems(err)}") from err
