"""The unit tests' fakes: one complete WaveSpeed, its CDN, and the test's clock.

`FakeWaveSpeed` fits `loradrop.ports.WaveSpeed` (and has the webhook secret call the webhook function makes):
conftest.py hands it to the use cases where they expect the port, so mypy holds it to the port. It keeps one
account's tasks, answers as told, and records every request, so a test asserts what was (or was not) asked.

Its rules, WaveSpeed's as far as its API documents them, and a few shorthands of its own:
- A POST answers `answer`: a task (given the POST's model and input, and kept), or one of the client's errors.
- A GET answers the task as kept; WaveSpeed's 404 (`NotFound`) for a task it does not keep or one in `gone`; a
  proxy's 404 page, without WaveSpeed's error body (`TransientError`, not WaveSpeed's word), for one in `proxy_404`.
- The history lists the tasks it keeps but those `gone`, and those `listed_anyway` (gone from the GET, still
  listed; one it does not keep is listed bare, as processing): newest first, in pages of `page_size` entries
  (silently fewer when `page_cap` is set), with the integer total unless `with_total` is off; every read fails
  while `history_broken`. It filters on the window's times, not on the model (one model's account).
- Shorthand: a task without a (readable) creation time is listed in every window, last.
- A history entry is the task without its `input`, unless the task was added with `history_input` (WaveSpeed's
  history may carry the input or leave it out; its GET carries it).
- Every request takes `request_seconds` of the clock's monotonic time, once a test has stopped that clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from loradrop.deadline import Deadline
from loradrop.job import iso, parse_iso
from loradrop.models import Task
from loradrop.wavespeed import HistoryPage, NotFound, TransientError, WaveSpeedError

CDN = "https://d1.cloudfront.net"  # where a completed task's output is, unless a test says otherwise


@dataclass
class Clock:
    """The test's time. `now` is the wall time the job store stamps its writes with (None: the real time).
    `elapsed`, once a test sets it, is the monotonic time the reconciler measures its run's budget on, moved
    only by the test and by the fake WaveSpeed's requests (None: the real monotonic clock)."""

    now: datetime | None = None
    elapsed: float | None = None

    def __call__(self) -> datetime:
        return datetime.now(UTC) if self.now is None else self.now

    def monotonic(self) -> float:
        return time.monotonic() if self.elapsed is None else self.elapsed

    def spend(self, seconds: float) -> None:
        """Time a request takes, on a stopped clock (the real one moves on its own)."""
        if self.elapsed is not None:
            self.elapsed += seconds


@dataclass(frozen=True)
class Post:
    """A POST of a training task, as sent."""

    model: str
    body: dict[str, Any]
    webhook: str


@dataclass(frozen=True)
class HistoryRequest:
    """A read of the prediction history, as asked."""

    model: str
    created_after: str
    created_before: str
    page: int
    page_size: int


def _created(task: Task) -> datetime | None:
    """A task's creation time, if it has one that can be compared (a time with its zone)."""
    try:
        created = parse_iso(task.created_at or "")
    except ValueError:
        return None
    return created if created.tzinfo is not None else None


@dataclass
class FakeWaveSpeed:
    tasks: dict[str, Task] = field(default_factory=dict)
    answer: Task | WaveSpeedError = field(default_factory=lambda: Task(id="task-1", status="created"))
    webhook_secret: str = "whsec_test"
    gone: set[str] = field(default_factory=set)  # WaveSpeed's 404 for these, and no longer in its history
    listed_anyway: set[str] = field(default_factory=set)  # in the history, whatever the GET answers
    proxy_404: set[str] = field(default_factory=set)  # a proxy's 404 page for these
    history_input: set[str] = field(default_factory=set)  # tasks whose history entries carry their input
    history_broken: bool = False
    with_total: bool = True
    page_cap: int | None = None
    clock: Clock = field(default_factory=Clock)
    request_seconds: float = 1.0
    posts: list[Post] = field(default_factory=list)
    gets: list[str] = field(default_factory=list)
    listings: list[HistoryRequest] = field(default_factory=list)
    # The pricing endpoint's answer (or its failure), the account's balance, and the quotes asked for.
    price: Decimal | WaveSpeedError = Decimal("1.00")
    account_balance: Decimal | WaveSpeedError = Decimal(100)
    quotes: list[Post] = field(default_factory=list)

    # ----- what a test puts on the account -----
    def add(
        self,
        task_id: str,
        *,
        at: datetime | None = None,
        link: str | None = None,
        status: str = "processing",
        outputs: list[str] | None = None,
        history_input: bool = False,
    ) -> Task:
        """A task created `at` (None: no creation time), trained on the ZIP at `link`; a completed one has its
        output on the CDN unless given `outputs`. It replaces a task of the same id."""
        if outputs is None:
            outputs = [f"{CDN}/{task_id}/lora.safetensors"] if status == "completed" else []
        task = Task(
            id=task_id,
            status=status,
            created_at=iso(at) if at is not None else None,
            input={"data": link} if link else None,
            outputs=outputs,
        )
        self.tasks[task_id] = task
        if history_input:
            self.history_input.add(task_id)
        else:
            self.history_input.discard(task_id)
        return task

    def crowd(self, count: int, *, around: datetime, spread: float = 100.0, seed: int = 7) -> None:
        """Other tools' tasks on the same account, completed, spread over the window around a moment."""
        rng = random.Random(seed)
        for i in range(count):
            at = around + timedelta(seconds=rng.uniform(-spread / 3, spread))
            self.add(f"other-{i:05d}", at=at, link=f"https://elsewhere.test/{i}.zip", status="completed")

    # ----- loradrop.ports.WaveSpeed -----
    def submit_training(self, model: str, body: dict[str, Any], webhook_url: str) -> Task:
        self._request()
        self.posts.append(Post(model, body, webhook_url))
        if isinstance(self.answer, WaveSpeedError):
            raise self.answer
        task = self.answer.model_copy(update={"model": model, "input": body})
        self.tasks[task.id] = task
        return task

    def get_result(self, prediction_id: str, deadline: Deadline | None = None) -> Task:
        self._request()
        self.gets.append(prediction_id)
        if prediction_id in self.proxy_404:
            raise TransientError("HTTP 404 without WaveSpeed's error body: <html>Not Found</html>")
        if prediction_id in self.gone or prediction_id not in self.tasks:
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
        self._request()
        self.listings.append(HistoryRequest(model, created_after, created_before, page, page_size))
        if self.history_broken:
            raise TransientError("history unavailable")
        after, before = parse_iso(created_after), parse_iso(created_before)
        window = [
            entry for entry in self._history() if (created := _created(entry)) is None or after <= created <= before
        ]
        window.sort(key=lambda entry: _created(entry) or datetime.min.replace(tzinfo=UTC), reverse=True)
        size = page_size if self.page_cap is None else min(page_size, self.page_cap)
        items = window[(page - 1) * size : page * size]
        return HistoryPage(items, len(items), len(window) if self.with_total else None)

    def quote(self, model: str, body: dict[str, Any], deadline: Deadline | None = None) -> Decimal:
        self._request()
        self.quotes.append(Post(model, body, ""))
        if isinstance(self.price, WaveSpeedError):
            raise self.price
        return self.price

    def balance(self, deadline: Deadline | None = None) -> Decimal:
        self._request()
        if isinstance(self.account_balance, WaveSpeedError):
            raise self.account_balance
        return self.account_balance

    # ----- the webhook function's secret -----
    def get_webhook_secret(self, deadline: Deadline | None = None) -> str:
        self._request()
        return self.webhook_secret

    def _request(self) -> None:
        self.clock.spend(self.request_seconds)

    def _history(self) -> list[Task]:
        """Every entry of the account's history, whatever its time."""
        listed = [task_id for task_id in self.tasks if task_id not in self.gone]
        listed += sorted(self.listed_anyway - set(listed))
        entries = []
        for task_id in listed:
            task = self.tasks.get(task_id) or Task(id=task_id, status="processing")
            entries.append(task if task_id in self.history_input else task.model_copy(update={"input": None}))
        return entries


class _Chunks(httpx.SyncByteStream):
    """A body that arrives in pieces, as a network stream does (bytes content would be pre-read)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    def __iter__(self) -> Iterator[bytes]:
        for start in range(0, len(self.body), 64 * 1024):
            yield self.body[start : start + 64 * 1024]


@dataclass
class FakeCDN:
    """WaveSpeed's CDN, behind an httpx mock transport: serves `body` for any output, or fails as told."""

    body: bytes = b""
    fail_with: int | None = None
    requests: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.fail_with:
            return httpx.Response(self.fail_with)
        return httpx.Response(200, stream=_Chunks(self.body), headers={"content-length": str(len(self.body))})
