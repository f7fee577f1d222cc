"""Job events come from the table's change stream: one per end the table records, whoever wrote it and
whatever happened to the writer after; stable ids for consumers, no repeat for a batch retried in place.
moto in process for DynamoDB (its stream) and EventBridge (a rule to SQS shows what was published)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from loradrop.events import EventPublisher, JobEnd, ends_in
from loradrop.models import JobStatus
from loradrop.redaction import json_for_logs
from tests.unit.conftest import World
from tests.unit.tables import job_in

Logger(json_serializer=json_for_logs)


SEEN = "seen"  # the queue a rule sends every event of loradrop's to


@pytest.fixture
def world(world: World) -> World:
    """The world, with a rule that sends every loradrop event on the default bus to the queue SEEN."""
    world.sqs.create_queue(QueueName=SEEN)
    world.events.put_rule(Name="all", EventPattern=json.dumps({"source": ["loradrop"]}))
    world.events.put_targets(Rule="all", Targets=[{"Id": "q", "Arn": f"arn:aws:sqs:us-east-1:123456789012:{SEEN}"}])
    return world


def stream_records(world: World) -> list[dict[str, Any]]:
    """Every record of the table's stream so far (moto's in-process streams API does not answer: read its shard)."""
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends["123456789012"]["us-east-1"].get_table("jobs").stream_shard
    return [record.to_json() for record in shard.items]


def published(world: World) -> list[dict[str, Any]]:
    url = world.sqs.get_queue_url(QueueName=SEEN)["QueueUrl"]
    answer = world.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def test_each_end_the_table_records_is_one_event_with_an_id_for_its_transition(world: World) -> None:
    # Given a job that failed, was retried, and completed, and a note added to it afterwards
    jobs = world.jobs
    job_in(jobs, JobStatus.TRAINING)
    failed = jobs.end("ana-1", {JobStatus.TRAINING}, JobStatus.FAILED, "5003", "unavailable").job
    assert failed is not None
    storing = jobs.reopen(failed, JobStatus.STORING, "copy retried").job
    assert storing is not None
    jobs.complete(storing, {"weights_uri": "s3://w/k"})
    done = jobs.get("ana-1")
    assert done is not None
    jobs.record_stray_task(done, "late-task", "a task of an earlier attempt", counted=True)
    # When the publisher reads the stream
    ends = ends_in(stream_records(world))
    # Then it finds the two ends, not the moves between them, nor the note on the ended job
    assert [(e.job.job_id, e.job.status) for e in ends] == [("ana-1", JobStatus.FAILED), ("ana-1", JobStatus.COMPLETED)]
    assert len({e.event_id for e in ends}) == 2
    assert ends[0].event_id.startswith("ana-1/FAILED/")
    assert EventPublisher(world.events, "default").publish(ends) is None
    seen = published(world)
    assert [e["detail-type"] for e in seen] == ["Job Failed", "Job Completed"]
    assert [e["detail"]["event_id"] for e in seen] == [e.event_id for e in ends]
    assert seen[1]["detail"]["weights_uri"] == "s3://w/k"
    assert "settling" not in seen[1]["detail"]  # the job item without internals


def test_a_record_that_cannot_be_read_is_counted_and_skipped_never_retried(world: World) -> None:
    record = {
        "eventName": "MODIFY",
        "dynamodb": {"SequenceNumber": "7", "NewImage": {"status": {"S": "FAILED"}, "job_id": {"S": "odd"}}},
    }
    assert ends_in([record]) == []
    assert Metrics().metric_set["EventsUnreadable"]["Value"] == [1.0]


class FlakyBus:
    """EventBridge that fails the entries it is told to (by the job ids in their detail)."""

    def __init__(self, failing: set[str], raises: bool = False) -> None:
        self.failing = failing
        self.raises = raises
        self.calls: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        ids = [json.loads(e["Detail"])["job_id"] for e in Entries]
        self.calls.append(ids)
        if self.raises:
            raise ConnectionError("EventBridge unreachable")
        results = [{"ErrorCode": "InternalFailure"} if i in self.failing else {"EventId": f"e-{i}"} for i in ids]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def ends(count: int) -> list[JobEnd]:
    from loradrop.job import Job

    return [
        JobEnd(
            str(100 + i),
            Job(
                job_id=f"j{i:02d}",
                status=JobStatus.COMPLETED,
                source_bucket="b",
                source_key="uploads/a.zip",
                created_at="2026-11-25T09:00:00.000Z",
                updated_at="2026-11-25T10:00:00.000Z",
            ),
        )
        for i in range(count)
    ]


def test_ten_to_a_call_and_a_failed_end_says_where_the_stream_resumes(world: World) -> None:
    bus = FlakyBus({"j13"})
    publisher = EventPublisher(bus, "default")
    batch = ends(25)
    assert publisher.publish(batch) == "113"  # the first end not published: Lambda retries from there
    assert [len(call) for call in bus.calls] == [10, 10]  # nothing after the failed chunk is sent
    # When the stream delivers the batch again from there, in the same container, and the bus recovers
    bus.failing.clear()
    assert publisher.publish(batch[13:]) is None
    # Then what was published before is not sent again: j14..j19 went out with the failed chunk
    assert bus.calls[2:] == [[f"j{i:02d}" for i in (13, 20, 21, 22, 23, 24)]]


def test_a_bus_that_cannot_be_reached_fails_the_batch_from_its_first_end(world: World) -> None:
    assert EventPublisher(FlakyBus(set(), raises=True), "default").publish(ends(3)) == "100"
    assert Metrics().metric_set["EventsNotPublished"]["Value"] == [3.0]


def test_events_fit_putevents_however_long_a_jobs_names(world: World) -> None:
    from loradrop.events import BYTES_PER_CALL, DETAIL_BYTES
    from loradrop.job import Job

    # Given ends of jobs whose ZIPs have hundreds of 600-character file names in their survey and warnings
    long = "photo-" + "x" * 600 + ".jpg"

    def dataset(examples: int) -> dict[str, Any]:
        kinds = ("unusable", "mismatched", "small", "uncaptioned")
        return {"images": 500, "duplicate_examples": [[long] * 3] * 5} | {
            f"{k}_examples": [long] * examples for k in kinds
        }

    big = [
        JobEnd(
            str(200 + i),
            Job(
                job_id=f"big{i:02d}",
                status=JobStatus.FAILED,
                source_bucket="b",
                source_key="uploads/a.zip",
                error_code="1401",
                error="e" * 5000,
                dataset=dataset(50 if i == 0 else 5),  # the first one's alone is over the detail's cap
                warnings=[long] * 40,
                history=[{"status": "SUBMITTED", "at": "t", "note": long}] * 60,
                created_at="2026-11-25T09:00:00.000Z",
                updated_at="2026-11-25T10:00:00.000Z",
            ),
        )
        for i in range(12)
    ]
    bus = FlakyBus(set())
    seen: list[int] = []
    original = bus.put_events

    details: list[dict[str, Any]] = []

    def measured(Entries: list[dict[str, Any]]) -> dict[str, Any]:
        seen.append(sum(len(e["Detail"].encode()) + 50 for e in Entries))
        assert all(len(e["Detail"].encode()) <= DETAIL_BYTES for e in Entries)
        details.extend(json.loads(e["Detail"]) for e in Entries)
        return original(Entries)

    bus.put_events = measured  # type: ignore[method-assign]
    # When they are published
    assert EventPublisher(bus, "default").publish(big) is None
    # Then every call stays within PutEvents' limits, and each event keeps what a consumer acts on
    assert all(size <= BYTES_PER_CALL for size in seen)
    assert sum(len(call) for call in bus.calls) == 12
    assert len(bus.calls) > 2  # split by size, not only by ten
    first = details[0]
    assert (first["job_id"], first["status"], first["error_code"], first["detail_cut"]) == (
        "big00",
        "FAILED",
        "1401",
        True,
    )
    assert first["event_id"] == "big00/FAILED/2026-11-25T10:00:00.000Z"
