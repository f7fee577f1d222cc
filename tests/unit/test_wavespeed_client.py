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
        (429, RateLimited),
        (500, TransientError),
        (503, TransientError),
        (400, RequestRejected),
        (401, RequestRejected),
        (403, RequestRejected),
    ],
)
def test_submit_error_statuses(status: int, error: type[Exception]) -> None:
    answer = httpx.Response(status, json={"message": "nope", "error_code": 1401})
    with pytest.raises(error) as caught:
        submit(client(lambda _: answer))
    assert "nope" in str(caught.value)


def test_envelope_error_inside_http_200_is_an_error() -> None:
    answer = httpx.Response(200, json={"code": 400, "message": "steps out of range"})
    with pytest.raises(RequestRejected, match="steps out of range"):
        submit(client(lambda _: answer))


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
