"""Job events on the EventBridge bus, for users to chain automation on."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from loradrop.jobs import Job
from loradrop.models import JobStatus

logger = Logger(child=True)
metrics = Metrics()

SOURCE = "loradrop"
DETAIL_TYPES = {
    JobStatus.COMPLETED: "Job Completed",
    JobStatus.FAILED: "Job Failed",
    JobStatus.REJECTED: "Job Rejected",
}


class EventPublisher:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._events = client
        self._bus = bus_name

    def publish(self, job: Job) -> bool:
        """Publish a terminal job's event. The state is already recorded, so a failure here is
        logged and counted (the EventsNotPublished metric has an alarm), not raised."""
        detail_type = DETAIL_TYPES.get(job.status)
        if detail_type is None:
            return False
        entry = {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(job.event_detail()),
            "EventBusName": self._bus,
        }
        try:
            answer = self._events.put_events(Entries=[entry])
            if answer.get("FailedEntryCount"):
                failure = answer["Entries"][0]
                raise RuntimeError(f"{failure.get('ErrorCode')}: {failure.get('ErrorMessage')}")
        except Exception:
            logger.exception("job event not published", extra={"detail_type": detail_type})
            metrics.add_metric(name="EventsNotPublished", unit=MetricUnit.Count, value=1)
            return False
        return True
