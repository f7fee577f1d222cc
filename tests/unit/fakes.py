"""One complete fake WaveSpeed for the unit tests: it fits `loradrop.ports.WaveSpeed` (and the webhook secret
call), answers as told and records every request, so a test asserts what was (or was not) sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loradrop.deadline import Deadline
from loradrop.models import Task
from loradrop.wavespeed import HistoryPage, NotFound, WaveSpeedError


@dataclass
class FakeWaveSpeed:
    tasks: dict[str, Task] = field(default_factory=dict)
    # The next POST's answer: a task (given the POST's input), or one of the client's errors.
    answer: Task | WaveSpeedError = field(default_factory=lambda: Task(id="task-1", status="created"))
    webhook_secret: str = "whsec_test"
    posts: list[dict[str, Any]] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    listings: list[dict[str, Any]] = field(default_factory=list)

    def submit_training(self, model: str, body: dict[str, Any], webhook_url: str) -> Task:
        self.posts.append({"model": model, "body": body, "webhook": webhook_url})
        if isinstance(self.answer, WaveSpeedError):
            raise self.answer
        task = self.answer.model_copy(update={"model": model, "input": body})
        self.tasks[task.id] = task
        return task

    def get_result(self, prediction_id: str, deadline: Deadline | None = None) -> Task:
        self.gets.append(prediction_id)
        if prediction_id not in self.tasks:
            raise NotFound("prediction not found", status=404)
        return self.tasks[prediction_id]

    def list_predictions(
        self,
        *,
        model: str,
        created_after: str,
        created_before: str,
        page: int,
        page_size: int = 100,
        deadline: Deadline | None = None,
    ) -> HistoryPage:
        """Newest first, with an integer total, as WaveSpeed documents its history."""
        self.listings.append({"model": model, "after": created_after, "before": created_before, "page": page})
        after, before = datetime.fromisoformat(created_after), datetime.fromisoformat(created_before)
        window = [
            task
            for task in self.tasks.values()
            if task.created_at and after <= datetime.fromisoformat(task.created_at.replace("Z", "+00:00")) <= before
        ]
        window.sort(key=lambda task: task.created_at or "", reverse=True)
        items = window[(page - 1) * page_size : page * page_size]
        return HistoryPage(items, len(items), len(window))

    def get_webhook_secret(self, deadline: Deadline | None = None) -> str:
        return self.webhook_secret
