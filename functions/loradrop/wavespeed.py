"""WaveSpeed's REST API: submit a training task, read a result, the webhook secret, a price and the balance.

Errors are typed by what they mean for the caller, because WaveSpeed has no idempotency key and
bills every task it creates:
- TransientError: nothing was created — a 429, or a connection that never opened (no request
  left this machine) — safe to try again later;
- RequestRejected: WaveSpeed's own 400/401/403 with its JSON error body — fix the input or the
  account, do not retry;
- OutcomeUncertain: everything else on a submit — a timeout, a dropped connection, any 5xx (a
  gateway's 502/504 can come after WaveSpeed created the task), an answer we cannot read. A submit
  is never repeated blindly; the task is found (or proven absent) from WaveSpeed's own records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from loradrop.deadline import Deadline
from loradrop.models import Task, parse_tasks
from loradrop.redaction import redact
from loradrop.tls import tls_context

# The official SDK's submit timeouts (wavespeed 2.0.5): connect 10 s, whole request 60 s.
SDK_CONNECT_TIMEOUT = 10.0
SDK_SUBMIT_TIMEOUT = 60.0
HISTORY_PAGE_SIZE = 100  # the most WaveSpeed's history endpoint gives per page
# A read is not started with less time than this left before its deadline (it could not get an answer).
MIN_READ_SECONDS = 0.5
MAX_ANSWER_BYTES = 16 * 1024 * 1024  # a history page of 100 tasks is ~100 KB; anything far bigger is not WaveSpeed
BALANCE_PATHS = ("/api/v3/balance", "/api/v3/account/balance")  # both documented; which is current is unknown


def connect_timeout(submit_timeout: float) -> float:
    return min(SDK_CONNECT_TIMEOUT, submit_timeout)


def hinted_webhook(url: str, **hints: object) -> str:
    """The webhook URL WaveSpeed is given, with loradrop's hints (the job, a sample) in its query: unsigned and maybe
    dropped on the way, so never the only clue."""
    return url + ("&" if "?" in url else "?") + "&".join(f"{name}={value}" for name, value in hints.items())


def longest_submit_seconds(submit_timeout: float) -> float:
    """How long one submit can wait: connecting, then the answer."""
    return connect_timeout(submit_timeout) + submit_timeout


class WaveSpeedError(Exception):
    def __init__(self, message: str, *, status: int | None = None, code: int | str | None = None) -> None:
        message = redact(message)  # WaveSpeed may echo the request, presigned link and all
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class TransientError(WaveSpeedError):
    """Nothing was created; the same call may succeed later."""


class RateLimited(TransientError):
    """429: over the account's task starts per minute."""


class RequestRejected(WaveSpeedError):
    """WaveSpeed refused the request (bad parameters, bad key, account problem)."""


class NotFound(RequestRejected):
    """WaveSpeed's own 404, in its JSON error body: it does not know what was asked for (a task it deleted,
    say). A 404 page from a proxy or CDN is no such answer: reads treat it as transient."""


class OutcomeUncertain(WaveSpeedError):
    """The request may or may not have been acted on."""


@dataclass(frozen=True)
class HistoryPage:
    """One page of WaveSpeed's prediction history, as answered."""

    items: list[Task]  # the entries that are predictions at all (each has an id)
    size: int  # entries on the page, readable or not
    total: int | None  # the listing's size, when WaveSpeed gave it as an integer


def _wavespeed_status(answer: httpx.Response) -> int | None:
    """The status of an answer that carries WaveSpeed's JSON error body (inside a 200 envelope, its code);
    None for anything else, such as a proxy's HTML page, which proves nothing about WaveSpeed."""
    try:
        payload = answer.json()
    except ValueError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("message"), str):
        return None
    status: Any = answer.status_code
    if status == 200:  # an error inside the envelope: its code stands for the status
        status = payload.get("code")
    return status if isinstance(status, int) else None


def _is_wavespeed_refusal(answer: httpx.Response) -> bool:
    """400/401/403 carrying WaveSpeed's JSON error body: WaveSpeed refused before creating anything.
    A bare 4xx (a proxy's HTML page, say) proves nothing."""
    return _wavespeed_status(answer) in (400, 401, 403)


def _error_from_answer(status: int, payload: Any, text: str) -> WaveSpeedError:
    message = text[:300] or f"HTTP {status}"
    code: int | str | None = None
    if isinstance(payload, dict):
        message = str(payload.get("message") or message)[:300]
        code = payload.get("error_code") or payload.get("code")
    if status == 429:
        return RateLimited(f"rate limited: {message}", status=status, code=code)
    if status >= 500:
        return TransientError(f"WaveSpeed server error {status}: {message}", status=status, code=code)
    return RequestRejected(message, status=status, code=code)


def _usd(amount: Any, problem: str, *, may_be_negative: bool = False) -> Decimal:
    """A USD amount from WaveSpeed's JSON: a number (never a bool or NaN); only a balance may be below zero."""
    if isinstance(amount, bool) or not isinstance(amount, int | float | str):
        raise WaveSpeedError(problem)
    try:
        value = Decimal(str(amount))
    except InvalidOperation as err:
        raise WaveSpeedError(problem) from err
    if not value.is_finite() or (value < 0 and not may_be_negative):
        raise WaveSpeedError(problem)
    return value


class WaveSpeedClient:
    """A small synchronous client; one instance per warm Lambda container."""

    def __init__(  # noqa: PLR0913 - the SDK's timeouts and tries, each set per function
        self,
        base_url: str,
        api_key: str,
        *,
        submit_timeout: float = SDK_SUBMIT_TIMEOUT,
        result_timeout: float = 15.0,
        result_tries: int = 3,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": "loradrop/0.1"}
        connect = connect_timeout(submit_timeout)
        self._submit_timeout = httpx.Timeout(connect=connect, read=submit_timeout, write=submit_timeout, pool=connect)
        self._result_tries = result_tries
        self._read_timeout = httpx.Timeout(connect=5.0, read=result_timeout, write=10.0, pool=5.0)
        self._transport = transport
        self._sleep = sleep
        self._balance_path = BALANCE_PATHS[0]
        self._http = httpx.Client(
            base_url=self._base_url,
            headers=self._headers,
            timeout=self._read_timeout,
            transport=transport,
            verify=tls_context(),
        )

    def close(self) -> None:
        self._http.close()

    def submit_training(self, model: str, body: dict[str, Any], webhook_url: str) -> Task:
        """POST one training task. Never retried here: see OutcomeUncertain."""
        # A fresh connection per submit: a stale pooled keep-alive connection would turn into a
        # "server disconnected" error that we could not tell apart from a lost answer.
        with httpx.Client(
            base_url=self._base_url,
            headers=self._headers,
            timeout=self._submit_timeout,
            transport=self._transport,
            verify=tls_context(),
        ) as http:
            try:
                answer = http.post(f"/api/v3/{model}", params={"webhook": webhook_url}, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as err:
                # The connection never opened, so no request reached WaveSpeed.
                raise TransientError(f"could not connect to WaveSpeed: {err!r}") from err
            except httpx.HTTPError as err:
                raise OutcomeUncertain(f"no answer from WaveSpeed after sending the task: {err!r}") from err
        try:
            data = self._data(answer)
        except RateLimited:
            raise
        except RequestRejected as err:
            if _is_wavespeed_refusal(answer):
                raise
            raise OutcomeUncertain(
                f"HTTP {answer.status_code} without WaveSpeed's error body: {err.message}", status=err.status
            ) from err
        except WaveSpeedError as err:  # 5xx, or a 200 we cannot read: the task may exist
            raise OutcomeUncertain(err.message, status=err.status or answer.status_code) from err
        try:
            return Task.model_validate(data)
        except ValueError as err:
            raise OutcomeUncertain(f"WaveSpeed's answer has no task id: {str(data)[:200]}") from err

    def list_predictions(  # noqa: PLR0913 - the documented filters, the page, and the deadline
        self,
        *,
        model: str,
        created_after: str,
        created_before: str,
        page: int,
        page_size: int = HISTORY_PAGE_SIZE,
        deadline: Deadline | None = None,
    ) -> HistoryPage:
        """One page of WaveSpeed's prediction history (newest first). Entries that do not parse are left out
        of `items` but counted in `size`, so a caller that needs the whole window knows it did not see all."""
        body = {
            "page": page,
            "page_size": page_size,
            "model": model,
            "created_after": created_after,
            "created_before": created_before,
        }
        data = self._read("POST", "/api/v3/predictions", body, deadline)
        if not isinstance(data, dict) or not isinstance(data.get("items"), list):
            raise TransientError(f"WaveSpeed's history answer has no items: {str(data)[:200]}")
        total = data.get("total")
        known = isinstance(total, int) and not isinstance(total, bool) and total >= 0
        return HistoryPage(parse_tasks(data["items"]), len(data["items"]), total if known else None)

    def get_result(self, prediction_id: str, deadline: Deadline | None = None) -> Task:
        """GET a task's authoritative state, retrying 429/5xx/connection errors a few times. NotFound only
        when WaveSpeed itself says it does not know the task."""
        data = self._get(f"/api/v3/predictions/{prediction_id}/result", deadline)
        return Task.model_validate(data)

    def get_webhook_secret(self, deadline: Deadline | None = None) -> str:
        data = self._get("/api/v3/webhook/secret", deadline)
        secret = data.get("secret") if isinstance(data, dict) else None
        if not isinstance(secret, str) or not secret:
            raise WaveSpeedError("WaveSpeed's webhook secret answer has no secret")
        return secret

    def quote(self, model: str, body: dict[str, Any], deadline: Deadline | None = None) -> Decimal:
        """What WaveSpeed would charge, in USD, for one task of `model` with exactly `body` (its pricing endpoint;
        a read: nothing is created, so it is retried like one)."""
        data = self._read("POST", "/api/v3/model/pricing", {"model_id": model, "inputs": body}, deadline)
        price = data.get("unit_price") if isinstance(data, dict) else None
        currency = data.get("currency", "USD") if isinstance(data, dict) else None
        if currency != "USD":
            raise WaveSpeedError(f"WaveSpeed's price is not in USD: {str(data)[:200]}")
        return _usd(price, f"WaveSpeed's pricing answer has no price: {str(data)[:200]}")

    def balance(self, deadline: Deadline | None = None) -> Decimal:
        """The account's balance in USD. Two paths are documented and which is current is not: the one that
        answered last is asked first, and WaveSpeed's own 404 on it sends the question to the other."""
        for path in (self._balance_path, *(p for p in BALANCE_PATHS if p != self._balance_path)):
            try:
                data = self._get(path, deadline)
            except NotFound:
                continue
            self._balance_path = path
            amount = data.get("balance") if isinstance(data, dict) else None
            return _usd(amount, f"WaveSpeed's balance answer has no balance: {str(data)[:200]}", may_be_negative=True)
        raise WaveSpeedError(f"WaveSpeed answers 404 on both balance paths ({', '.join(BALANCE_PATHS)})", status=404)

    def _get(self, path: str, deadline: Deadline | None) -> Any:
        return self._read("GET", path, None, deadline)

    def _timeout(self, deadline: Deadline | None) -> httpx.Timeout:
        """The read timeouts, each cut to what is left before the deadline (a connect timeout too)."""
        if deadline is None:
            return self._read_timeout
        left = deadline.remaining()
        if left < MIN_READ_SECONDS:
            raise TransientError("WaveSpeed not asked: no time left before this invocation's deadline")
        parts = self._read_timeout
        return httpx.Timeout(
            connect=min(parts.connect or left, left),
            read=min(parts.read or left, left),
            write=min(parts.write or left, left),
            pool=min(parts.pool or left, left),
        )

    def _read(self, method: str, path: str, body: Any, deadline: Deadline | None) -> Any:
        """Reads (never a submit) are retried on 429, 5xx, connection errors and answers that are not
        WaveSpeed's (a proxy's page), as the SDKs do, within the deadline."""
        for attempt in range(1, self._result_tries + 1):
            try:
                try:
                    answer = self._answer(method, path, body, deadline)
                except httpx.HTTPError as err:
                    raise TransientError(f"WaveSpeed {method} {path} failed: {err!r}") from err
                return self._read_data(answer)
            except TransientError:
                pause = 0.5 * attempt
                if attempt == self._result_tries or (deadline and deadline.remaining() < pause + MIN_READ_SECONDS):
                    raise
                self._sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, method: str, path: str, body: Any, deadline: Deadline | None) -> httpx.Response:
        """One request, its body read piece by piece: httpx's timeouts bound each wait, not the whole answer, so
        an answer still trickling in at the deadline is given up (and one too large to be WaveSpeed's)."""
        request = self._http.build_request(method, path, json=body, timeout=self._timeout(deadline))
        answer = self._http.send(request, stream=True)
        try:
            content = bytearray()
            for chunk in answer.iter_bytes():
                content += chunk
                if deadline is not None and deadline.remaining() <= 0:
                    raise TransientError(f"WaveSpeed's answer to {method} {path} was still arriving at the deadline")
                if len(content) > MAX_ANSWER_BYTES:
                    raise TransientError(f"WaveSpeed's answer to {method} {path} is over {MAX_ANSWER_BYTES:,} bytes")
        finally:
            answer.close()
        kind = {"content-type": answer.headers.get("content-type", "")}  # the body is decoded already
        return httpx.Response(answer.status_code, headers=kind, content=bytes(content), request=request)

    @classmethod
    def _read_data(cls, answer: httpx.Response) -> Any:
        """An answer to a read: a page that is not WaveSpeed's (a proxy's or CDN's, 200 or 4xx) is transient,
        never WaveSpeed's word; WaveSpeed's own 404 is NotFound."""
        try:
            return cls._data(answer)
        except (TransientError, OutcomeUncertain):
            raise
        except RequestRejected as err:
            status = _wavespeed_status(answer)
            if status is None:
                raise TransientError(
                    f"HTTP {answer.status_code} without WaveSpeed's error body: {err.message}", status=err.status
                ) from err
            if status == 404:
                raise NotFound(err.message, status=404, code=err.code) from err
            raise
        except WaveSpeedError as err:  # a 200 without WaveSpeed's envelope
            raise TransientError(err.message, status=err.status) from err

    @staticmethod
    def _data(answer: httpx.Response) -> Any:
        try:
            payload = answer.json()
        except ValueError:
            payload = None
        if answer.status_code != 200:
            raise _error_from_answer(answer.status_code, payload, answer.text)
        if not isinstance(payload, dict):
            raise WaveSpeedError(f"WaveSpeed answered 200 without a JSON envelope: {answer.text[:200]!r}")
        envelope_code = payload.get("code", 200)
        if envelope_code != 200:
            status = envelope_code if isinstance(envelope_code, int) and 400 <= envelope_code < 600 else 400
            raise _error_from_answer(status, payload, answer.text)
        return payload.get("data")
