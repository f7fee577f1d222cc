"""What callers do with a running local stack besides run it: the demo, the tests and the reliability
scenarios upload ZIPs, read a job and wait for its state, drain the event, notification and dead-letter
queues, and count invocations. Kept apart from the stack's lifecycle (`stack`); fault injection is on
`LocalStack.aws_requests` (`moto_front`) and on the simulator's `faults`."""

from __future__ import annotations

import json
import time
from typing import Any

from loradrop_local.aws.lambda_runtime import FunctionRuntime
from loradrop_local.aws.provision import Deployment
from loradrop_local.aws.remote_runtime import RemoteRuntime


class StackProbes:
    """Mixed into `LocalStack`, which provides the deployment, the runtimes and `client()`."""

    deployment: Deployment
    runtimes: dict[str, FunctionRuntime | RemoteRuntime]

    def client(self, service: str, credentials: dict[str, str] | None = None) -> Any:
        raise NotImplementedError

    @property
    def names(self) -> dict[str, str]:
        return self.deployment.names

    @property
    def queue_urls(self) -> dict[str, str]:
        return self.deployment.queue_urls

    @property
    def uploads_bucket(self) -> str:
        return self.names["UploadsBucket"]

    @property
    def weights_bucket(self) -> str:
        return self.names["WeightsBucket"]

    @property
    def table_name(self) -> str:
        return self.names["JobsTable"]

    @property
    def invocations(self) -> dict[str, int]:
        return {logical_id: runtime.invocations for logical_id, runtime in self.runtimes.items()}

    def job(self, job_id: str) -> dict[str, Any] | None:
        from loradrop.jobs import JobStore

        found = JobStore(self.client("dynamodb"), self.table_name).get(job_id)
        return found.public() if found else None

    def upload(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> str:
        """PUT a ZIP into the uploads bucket; return the id of the job it will create."""
        from loradrop.job import job_id_for

        answer = self.client("s3").put_object(Bucket=self.uploads_bucket, Key=key, Body=body, Metadata=metadata or {})
        # moto's notifications carry no versionId (AWS's do), so locally the ETag names the upload.
        return job_id_for(self.uploads_bucket, key, None, answer["ETag"])

    def wait_for(self, job_id: str, statuses: set[str], timeout: float = 30.0) -> dict[str, Any]:
        """Poll the job until it reaches one of `statuses`; raise with the last state if it does not."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job is not None and job["status"] in statuses:
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id} did not reach {sorted(statuses)} in {timeout}s; last: {job}")

    def drain_events(self) -> list[dict[str, Any]]:
        """Job events published so far (the local subscriber queue's messages), removed from it."""
        return self.drain_queue("Events")

    def notifications(self, topic: str = "NotificationTopic") -> list[str]:
        """What the topic would have sent its subscribers (an email's text) since the last call."""
        inbox = self.deployment.inboxes.get(topic)
        return [str(body.get("message", body)) for body in self.drain_queue(inbox)] if inbox else []

    def drain_queue(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete every visible message (SQS allows one purge a minute; this has no limit)."""
        sqs = self.client("sqs")
        bodies: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(QueueUrl=self.queue_urls[logical_id], MaxNumberOfMessages=10)
            messages = answer.get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_urls[logical_id], ReceiptHandle=message["ReceiptHandle"])

    def dead_letters_for(self, logical_id: str, job_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait for a job's message to reach a dead-letter queue (SQS moves it on the receive after the
        last failure, seconds after the job ended); return that job's messages. Others found on the way
        are removed too: each test or scenario owns its own job."""
        deadline = time.monotonic() + timeout
        found: list[dict[str, Any]] = []
        while not found and time.monotonic() < deadline:
            found = [body for body in self.drain_queue(logical_id) if body.get("job_id") == job_id]
            if not found:
                time.sleep(0.1)
        return found

    def queue_depth(self, logical_id: str) -> int:
        attributes = self.client("sqs").get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])
