"""The WaveSpeed client's error typing decides whether a submit may ever be repeated."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from loradrop.credentials import WaveSpeedCredentials, WebhookSecretSource
from loradrop.deadline import Deadline
from loradrop.wavespeed import (
    NotFound,
    OutcomeUncertain,
    RateLimited,
    RequestRejected,
    TransientError,
    WaveSpeedClient,
    WaveSpeedError,
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

    page = client(handler).list_predictions(
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
    # the item without an id is left out, and the page's size and total still say 3 exist
    assert [(p.id, p.status, p.outputs, p.code) for p in page.items] == [
        ("task-1", "created", [], None),
        ("task-2", "unknown", [], 5003),
    ]
    assert (page.size, page.total) == (3, 3)


@pytest.mark.parametrize("total", [None, "3", 2.5, -1, True])
def test_a_history_page_without_an_integer_total_says_its_total_is_unknown(total: object) -> None:
    data: dict[str, object] = {"page": 1, "items": [PREDICTION]} | ({} if total is None else {"total": total})
    page = client(lambda _: httpx.Response(200, json={"code": 200, "data": data})).list_predictions(
        model="m", created_after="A", created_before="B", page=1
    )
    assert (page.size, page.total) == (1, None)  # never the page's own length standing in for it


def test_only_wavespeeds_own_404_says_a_task_is_not_found() -> None:
    wavespeeds = httpx.Response(404, json={"message": "prediction not found"})
    with pytest.raises(NotFound):
        client(lambda _: wavespeeds).get_result("t")
    for page in (
        httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"}),
        httpx.Response(404, json=["not", "wavespeed"]),
        httpx.Response(200, text="<html>a captive portal</html>"),
    ):
        calls: list[int] = []

        def proxy(request: httpx.Request, page: httpx.Response = page, calls: list[int] = calls) -> httpx.Response:
            calls.append(1)
            return page

        with pytest.raises(TransientError) as caught:
            client(proxy, tries=2).get_result("t")
        assert not isinstance(caught.value, RequestRejected)
        assert len(calls) == 2  # retried like any transient failure


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reads_fit_the_deadline_timeouts_and_pauses_included() -> None:
    clock = Clock()
    seen: list[dict[str, float]] = []
    pauses: list[float] = []

    def slow(request: httpx.Request) -> httpx.Response:  # answers 503 after 2 s, or times out sooner
        timeout = request.extensions["timeout"]
        seen.append(timeout)
        clock.now += min(2.0, timeout["read"])
        if timeout["read"] < 2.0:
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(503, json={"message": "busy"})

    c = WaveSpeedClient(
        "https://ws.test",
        "key",
        transport=httpx.MockTransport(slow),
        result_tries=5,
        result_timeout=15.0,
        sleep=lambda s: (pauses.append(s), setattr(clock, "now", clock.now + s)),  # type: ignore[func-returns-value]
    )
    with pytest.raises(TransientError):
        c.get_result("t", deadline=Deadline.within(6.0, clock))
    # every wait was cut to what was left, and no try started that could not be answered in time
    assert [t["read"] for t in seen] == [6.0, 3.5, 0.5]
    assert all(t["connect"] <= t["read"] for t in seen)
    assert pauses == [0.5, 1.0]
    assert clock.now == 6.0
    with pytest.raises(TransientError, match="no time left"):
        c.get_result("t", deadline=Deadline.within(0.2, clock))
    assert len(seen) == 3  # nothing sent


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

    def fetch(deadline: Deadline | None) -> str:
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


def test_an_answer_still_trickling_in_at_the_deadline_is_given_up() -> None:
    clock = Clock()

    class Trickle(httpx.SyncByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            body = json.dumps({"code": 200, "data": PREDICTION}).encode()
            for byte in body:
                clock.now += 0.5  # each byte within any read timeout, the whole far past the deadline
                yield bytes([byte])

    answers: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answers.append(1)
        return httpx.Response(200, stream=Trickle())

    c = WaveSpeedClient(
        "https://ws.test", "k", transport=httpx.MockTransport(handler), result_tries=3, sleep=lambda _: None
    )
    with pytest.raises(TransientError, match="still arriving at the deadline"):
        c.get_result("t", deadline=Deadline.within(5.0, clock))
    assert clock.now <= 5.5  # given up at the deadline, not after the whole answer
    assert answers == [1]  # and no try started without the time to finish


def test_gzip_answers_are_read_as_json() -> None:
    import gzip

    body = gzip.compress(json.dumps({"code": 200, "data": PREDICTION | {"status": "completed"}}).encode())
    answer = httpx.Response(200, content=body, headers={"content-encoding": "gzip", "content-type": "application/json"})
    assert client(lambda _: answer).get_result("t").status == "completed"


def test_a_quote_is_asked_for_the_model_and_the_exact_body() -> None:
    seen: list[httpx.Request] = []

    def pricing(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        data = {"model_id": "wavespeed-ai/flux-dev-lora-trainer", "unit_price": 1.5, "currency": "USD"}
        return httpx.Response(200, json={"code": 200, "message": "success", "data": data})

    body = {"data": "https://zip", "steps": 1500}
    assert client(pricing).quote("wavespeed-ai/flux-dev-lora-trainer", body) == Decimal("1.5")
    (request,) = seen
    assert (request.method, request.url.path) == ("POST", "/api/v3/model/pricing")
    assert json.loads(request.content) == {"model_id": "wavespeed-ai/flux-dev-lora-trainer", "inputs": body}
    assert request.headers["authorization"] == "Bearer key-123"


@pytest.mark.parametrize(
    "data",
    [{"unit_price": "n/a"}, {"unit_price": -1}, {"unit_price": True}, {"unit_price": 1, "currency": "EUR"}, None],
)
def test_a_price_that_is_not_a_usd_amount_is_no_price(data: object) -> None:
    answer = httpx.Response(200, json={"code": 200, "data": data})
    with pytest.raises(WaveSpeedError):
        client(lambda _: answer).quote("m", {})


def test_the_balance_falls_back_to_the_other_documented_path_on_wavespeeds_own_404_and_remembers_it() -> None:
    paths: list[str] = []

    def account(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path == "/api/v3/balance":
            return httpx.Response(404, json={"message": "not found"})
        return httpx.Response(200, json={"code": 200, "data": {"balance": -0.25, "currency": "USD"}})

    wavespeed = client(account)
    assert wavespeed.balance() == Decimal("-0.25")  # an overdrawn account is still an answer
    assert wavespeed.balance() == Decimal("-0.25")
    assert paths == ["/api/v3/balance", "/api/v3/account/balance", "/api/v3/account/balance"]


def test_a_proxys_404_on_the_balance_is_not_taken_for_a_missing_path() -> None:
    paths: list[str] = []

    def proxy(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"})

    with pytest.raises(TransientError):
        client(proxy, tries=2).balance()
    assert paths == ["/api/v3/balance"] * 2
