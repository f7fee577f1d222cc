"""Job events on the EventBridge bus, for users to chain automation on.

They are published from the jobs table's change stream, not by the function that ends a job: every terminal
transition the table records becomes an event, even when its writer crashed right after the write. The
stream delivers at least once, so each event carries `event_id` — the job and the transition it reports —
for a consumer to drop a repeat; a batch retried in the same container skips what it already published.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.jobs import Job, job_from_image, parse_iso
from loradrop.models import JobStatus

logger = Logger(child=True)
metrics = Metrics()

SOURCE = "loradrop"
DETAIL_TYPES = {
    JobStatus.COMPLETED: "Job Completed",
    JobStatus.FAILED: "Job Failed",
    JobStatus.REJECTED: "Job Rejected",
}
ENTRIES_PER_CALL = 10  # PutEvents takes at most ten entries
REMEMBERED = 10_000  # event ids a container keeps, to skip them when a batch it partly published comes back


@dataclass(frozen=True)
class JobEnd:
    """A terminal transition, as one stream record shows it."""

    sequence: str  # the record's SequenceNumber: where Lambda resumes a batch that failed from here
    job: Job

    @property
    def event_id(self) -> str:
        """The same for every delivery of this transition, different for the job's next end (after a retry)."""
        return f"{self.job.job_id}/{self.job.status.value}/{self.job.updated_at}"


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
        if (old.get("status") or {}).get("S") == status:
            continue  # a note on an ended job (a stray task recorded, say): not a new end
        try:
            ends.append(JobEnd(str(change["SequenceNumber"]), job_from_image(new)))
        except Exception:
            logger.exception("a job's end could not be read from its stream record; no event for it")
            metrics.add_metric(name="EventsUnreadable", unit=MetricUnit.Count, value=1)
    return ends


class EventPublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name
        self._published: OrderedDict[str, None] = OrderedDict()

    def publish(self, ends: list[JobEnd]) -> str | None:
        """Publish each end's event in order, ten to a call; the sequence number of the first that failed
        (Lambda retries the batch from there), or None when all were published."""
        pending = [end for end in ends if end.event_id not in self._published]
        for start in range(0, len(pending), ENTRIES_PER_CALL):
            chunk = pending[start : start + ENTRIES_PER_CALL]
            try:
                answer = self._events.put_events(Entries=[self._entry(end) for end in chunk])
                results = answer.get("Entries", [])
            except Exception:
                logger.exception("job events not published; the stream delivers them again")
                results = []
            failed = None
            for end, result in zip(chunk, [*results, *[{}] * (len(chunk) - len(results))], strict=True):
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

    def _entry(self, end: JobEnd) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Source": SOURCE,
            "DetailType": DETAIL_TYPES[end.job.status],
            "Detail": json.dumps(end.job.event_detail() | {"event_id": end.event_id}),
            "EventBusName": self._bus,
        }
        with suppress(ValueError):  # the event's time is when the job ended, not when this delivery happened
            entry["Time"] = parse_iso(end.job.updated_at)
        return entry

    def _remember(self, event_id: str) -> None:
        self._published[event_id] = None
        if len(self._published) > REMEMBERED:
            self._published.popitem(last=False)
