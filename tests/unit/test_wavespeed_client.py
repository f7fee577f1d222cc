"""The WaveSpeed client's error typing decides whether a submit may ever be repeated."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from loradrop.credentials import WaveSpeedCredentials, WebhookSecretSource
from loradrop.wavespeed import (
    OutcomeUncertain,
    RateLimited,
    RequestRejected,
    TransientError,
    WaveSpeedClient,
)

PREDICTION = {"id": "task-1", "status": "created", "outputs": [], "model": "wavespeed-ai/flux-dev-lora-trainer"}


def client(handler: Callable[[httpx.Request], httpx.Response], tries: int = 3) -> WaveSpeedClient:
    return WaveSpeedClient(
        "https://ws.test", "key-123", transport=httpx.MockTransport(handler), result_tries=tries, sleep=lambda _: None
    )


def submit(c: WaveSpeedClient):  # type: ignore[no-untyped-def]
    return c.submit_training("wavespeed-ai/flux-dev-lora-trainer", {"data": "https://zip"}, "https://hook/x?y=1")


def test_submit_sends_documented_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"code": 200, "message": "success", "data": PREDICTION})

    assert submit(client(handler)).id == "task-1"
    (request,) = seen
    assert request.url.path == "/api/v3/wavespeed-ai/flux-dev-lora-trainer"
    assert request.url.params["webhook"] == "https://hook/x?y=1"
    assert request.headers["authorization"] == "Bearer key-123"
    assert json.loads(request.content) == {"data": "https://zip"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, RateLimited),  # certain: nothing created, try later
        (400, RequestRejected),  # certain: WaveSpeed's own refusal
        (401, RequestRejected),
        (403, RequestRejected),
        (404, OutcomeUncertain),  # not one of the documented refusals
        (500, OutcomeUncertain),  # a 5xx may come after the task was created: never resent
        (502, OutcomeUncertain),
        (503, OutcomeUncertain),
        (504, OutcomeUncertain),
    ],
)
def test_submit_error_statuses(status: int, error: type[Exception]) -> None:
    answer = httpx.Response(status, json={"message": "nope", "error_code": 1401})
    with pytest.raises(error) as caught:
        submit(client(lambda _: answer))
    assert "nope" in str(caught.value)
    if error is OutcomeUncertain:
        assert not isinstance(caught.value, TransientError)


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_4xx_without_wavespeeds_error_body_is_uncertain(status: int) -> None:
    answer = httpx.Response(status, text="<html>blocked by a proxy</html>")
    with pytest.raises(OutcomeUncertain, match=f"HTTP {status} without WaveSpeed's error body"):
        submit(client(lambda _: answer))


def test_submit_uses_the_sdk_timeouts() -> None:
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(200, json={"code": 200, "data": PREDICTION})

    submit(client(handler))
    assert seen[0]["connect"] == 10.0
    assert seen[0]["read"] == 60.0


def test_history_page_is_requested_with_the_documented_filters_and_read_leniently() -> None:
    seen: list[dict[str, object]] = []
    items = [PREDICTION, {"id": "task-2", "status": None, "outputs": "x", "code": "5003"}, {"status": "completed"}]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"code": 200, "data": {"page": 1, "total": 3, "items": items}})

    found, total = client(handler).list_predictions(
        model="wavespeed-ai/flux-dev-lora-trainer", created_after="A", created_before="B", page=1
    )
    assert seen == [
        {
            "page": 1,
            "page_size": 100,
            "model": "wavespeed-ai/flux-dev-lora-trainer",
            "created_after": "A",
            "created_before": "B",
        }
    ]
    # the item without an id is left out, and the total still says 3 exist
    assert [(p.id, p.status, p.outputs, p.code) for p in found] == [
        ("task-1", "created", [], None),
        ("task-2", "unknown", [], 5003),
    ]
    assert total == 3


def test_envelope_error_inside_http_200_is_an_error() -> None:
    answer = httpx.Response(200, json={"code": 400, "message": "steps out of range"})
    with pytest.raises(RequestRejected, match="steps out of range"):
        submit(client(lambda _: answer))
    with pytest.raises(OutcomeUncertain):
        submit(client(lambda _: httpx.Response(200, json={"code": 500, "message": "internal"})))


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.RemoteProtocolError("dropped"), httpx.WriteTimeout("stuck")],
)
def test_lost_answers_are_uncertain(failure: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise failure

    with pytest.raises(OutcomeUncertain):
        submit(client(handler))


def test_unreadable_200_is_uncertain() -> None:
    with pytest.raises(OutcomeUncertain):
        submit(client(lambda _: httpx.Response(200, text="<html>gateway</html>")))
    with pytest.raises(OutcomeUncertain):
        submit(client(lambda _: httpx.Response(200, json={"code": 200, "data": {"status": "created"}})))


def test_refused_connection_created_nothing() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(TransientError) as caught:
        submit(client(handler))
    assert not isinstance(caught.value, OutcomeUncertain)


def test_get_result_retries_transient_errors() -> None:
    answers = [
        httpx.Response(500, json={"message": "x"}),
        httpx.Response(429, json={"message": "x"}),
        httpx.Response(200, json={"code": 200, "data": PREDICTION | {"status": "completed"}}),
    ]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        return answers.pop(0)

    assert client(handler).get_result("task-1").status == "completed"
    assert calls == ["/api/v3/predictions/task-1/result"] * 3


def test_get_result_gives_up_after_its_tries() -> None:
    with pytest.raises(TransientError):
        client(lambda _: httpx.Response(502, json={"message": "x"}), tries=2).get_result("t")


def test_webhook_secret() -> None:
    answer = httpx.Response(200, json={"code": 200, "data": {"secret": "whsec_abc"}})
    assert client(lambda _: answer).get_webhook_secret() == "whsec_abc"


def test_secret_source_prefers_configured_secret_and_rate_limits_refresh() -> None:
    fetched: list[int] = []
    now = [0.0]
    configured: list[str | None] = [None]

    def credentials(force: bool) -> WaveSpeedCredentials:
        return WaveSpeedCredentials("key", configured[0])

    def fetch() -> str:
        fetched.append(1)
        return f"whsec_{len(fetched)}"

    source = WebhookSecretSource(credentials, fetch, min_refresh_interval=60, clock=lambda: now[0])
    assert source.get() == "whsec_1"
    assert source.get() == "whsec_1"  # cached
    assert source.refresh() == "whsec_2"
    assert source.refresh() is None  # too soon: forged requests cannot make us hammer WaveSpeed
    now[0] = 61
    configured[0] = "whsec_configured"
    assert source.refresh() == "whsec_configured"
    assert len(fetched) == 2
    assert "key" not in repr(WaveSpeedCredentials("key", "whsec_x"))
