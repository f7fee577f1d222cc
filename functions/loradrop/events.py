"""Job events on the EventBridge bus, for users to chain automation on.

They are published from the jobs table's change stream, not by the function that ends a job: every terminal
transition the table records becomes an event, even when its writer crashed right after the write. The
stream delivers at least once, so each event carries `event_id` — the job and the transition it reports —
for a consumer to drop a repeat; a batch retried in the same container skips what it already published.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.job import Job, parse_iso
from loradrop.job_table import job_from_image
from loradrop.models import JobStatus

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

logger = Logger(child=True)
metrics = Metrics()

SOURCE = "loradrop"
DETAIL_TYPES = {
    JobStatus.COMPLETED: "Job Completed",
    JobStatus.FAILED: "Job Failed",
    JobStatus.REJECTED: "Job Rejected",
}
ENTRIES_PER_CALL = 10  # PutEvents takes at most ten entries...
BYTES_PER_CALL = 240 * 1024  # ...of at most 256 KB in all
SAMPLES_READY = "Samples Ready"  # a completed job's sample images all ended (stored, or why not)
DETAIL_BYTES = 64 * 1024  # one event's detail at most: a job whose ZIP has very long names is slimmed to this
# What an event keeps whatever else must go to fit.
ESSENTIAL = (
    *("job_id", "status", "name", "summary", "event_id", "error_code", "error", "prediction_id", "attempts"),
    *("weights_uri", "weights_size", "weights_sha256", "model_card_uri", "source_bucket", "source_key"),
    *("samples", "samples_settled_at"),  # at most 4 samples of at most a few KB: what a Samples Ready event is for
)
REMEMBERED = 10_000  # event ids a container keeps, to skip them when a batch it partly published comes back


@dataclass(frozen=True)
class JobEnd:
    """A terminal transition, as one stream record shows it."""

    sequence: str  # the record's SequenceNumber: where Lambda resumes a batch that failed from here
    job: Job
    samples: bool = False  # not the job's end: its sample images all ended (`loradrop.samples`)

    @property
    def event_id(self) -> str:
        """The same for every delivery of this transition, different for the job's next end (after a retry)."""
        if self.samples:
            return f"{self.job.job_id}/SAMPLES/{self.job.samples_settled_at}"
        return f"{self.job.job_id}/{self.job.status.value}/{self.job.updated_at}"

    @property
    def detail_type(self) -> str:
        return SAMPLES_READY if self.samples else DETAIL_TYPES[self.job.status]

    @property
    def at(self) -> str:
        return (self.job.samples_settled_at if self.samples else None) or self.job.updated_at


def ends_in(records: Iterable[dict[str, Any]]) -> list[JobEnd]:
    """The job ends among a batch of stream records: an item that moved into COMPLETED, FAILED or REJECTED.
    Any other change is not an end; a record whose item cannot be read is logged and counted, never retried
    (it would fail the same way, holding back every later event of its shard)."""
    ends = []
    for record in records:
        change = record.get("dynamodb") or {}
        new, old = change.get("NewImage") or {}, change.get("OldImage") or {}
        status = (new.get("status") or {}).get("S")
        if record.get("eventName") not in ("INSERT", "MODIFY") or status not in {s.value for s in DETAIL_TYPES}:
            continue
        samples = False
        if (old.get("status") or {}).get("S") == status:
            # a note on an ended job (a stray task recorded, say) is not a new end; its samples settling is an event
            samples = (
                status == JobStatus.COMPLETED.value and "samples_settled_at" in new and "samples_settled_at" not in old
            )
            if not samples:
                continue
        try:
            ends.append(JobEnd(str(change["SequenceNumber"]), job_from_image(new), samples))
        except Exception:
            logger.exception("a job's end could not be read from its stream record; no event for it")
            metrics.add_metric(name="EventsUnreadable", unit=MetricUnit.Count, value=1)
    return ends


class EventPublisher:
    def __init__(self, client: EventBridgeClient, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name
        self._published: OrderedDict[str, None] = OrderedDict()

    def publish(self, ends: list[JobEnd]) -> str | None:
        """Publish each end's event in order, as many to a call as PutEvents takes; the sequence number of the
        first that failed (Lambda retries the batch from there), or None when all were published."""
        pending = [(end, self._entry(end)) for end in ends if end.event_id not in self._published]
        for chunk in _calls(pending):
            try:
                answer = self._events.put_events(Entries=[entry for _, entry in chunk])
                results = answer.get("Entries", [])
            except Exception:
                logger.exception("job events not published; the stream delivers them again")
                results = []
            failed = None
            for (end, _), result in zip(chunk, [*results, *[{}] * (len(chunk) - len(results))], strict=True):
                if result.get("EventId"):
                    self._remember(end.event_id)
                elif failed is None:
                    failed = end
                    logger.warning("job event not published", extra={"job_id": end.job.job_id, "error": result})
            published = sum(1 for r in results if r.get("EventId"))
            metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=published)
            if failed is not None:
                metrics.add_metric(name="EventsNotPublished", unit=MetricUnit.Count, value=len(chunk) - published)
                return failed.sequence
        return None

    def _entry(self, end: JobEnd) -> PutEventsRequestEntryTypeDef:
        entry: PutEventsRequestEntryTypeDef = {
            "Source": SOURCE,
            "DetailType": end.detail_type,
            "Detail": _detail(end),
            "EventBusName": self._bus,
        }
        with suppress(ValueError):  # the event's time is when the job ended, not when this delivery happened
            entry["Time"] = parse_iso(end.at)
        return entry

    def _remember(self, event_id: str) -> None:
        self._published[event_id] = None
        if len(self._published) > REMEMBERED:
            self._published.popitem(last=False)


def _detail(end: JobEnd) -> str:
    """The event's detail: the job without internals, slimmed when it would not fit (the dataset survey's
    examples and the middle of the history go first; the job's id, state, error and weights always stay)."""
    detail = end.job.event_detail() | {"event_id": end.event_id}
    text = json.dumps(detail)
    if len(text.encode()) <= DETAIL_BYTES:
        return text
    survey = detail.get("dataset") or {}
    slim = detail | {
        "dataset": {k: v for k, v in survey.items() if not k.endswith("_examples")},
        "history": detail.get("history", [])[:1] + detail.get("history", [])[-4:],
        "warnings": detail.get("warnings", [])[:5],
        "detail_cut": True,
    }
    text = json.dumps(slim)
    if len(text.encode()) <= DETAIL_BYTES:
        return text
    return json.dumps({k: detail[k] for k in ESSENTIAL if k in detail} | {"detail_cut": True})


def _calls(
    pending: list[tuple[JobEnd, PutEventsRequestEntryTypeDef]],
) -> Iterator[list[tuple[JobEnd, PutEventsRequestEntryTypeDef]]]:
    """The entries in order, in calls PutEvents takes: ten at most, 256 KB at most in all."""
    chunk: list[tuple[JobEnd, PutEventsRequestEntryTypeDef]] = []
    size = 0
    for item in pending:
        entry = item[1]
        weight = len(entry["Detail"].encode()) + len(entry["Source"]) + len(entry["DetailType"]) + 14  # + Time
        if chunk and (len(chunk) == ENTRIES_PER_CALL or size + weight > BYTES_PER_CALL):
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += weight
    if chunk:
        yield chunk
