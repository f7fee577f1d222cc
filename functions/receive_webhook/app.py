"""ReceiveWebhook: POST /webhooks/wavespeed → `loradrop.webhooks` (verify, look up, act on WaveSpeed's answer)."""

from __future__ import annotations

from loradrop.startup import collector_paused

with collector_paused():
    from typing import Any

    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from loradrop.deadline import Deadline
    from loradrop.redaction import json_for_logs
    from loradrop.services import tracker, webhook_secrets
    from loradrop.settings import webhook_settings
    from loradrop.wavespeed import WaveSpeedError
    from loradrop.webhooks import HttpError, answer, is_route, receive

    logger = Logger(json_serializer=json_for_logs)  # every log line is redacted
    metrics = Metrics()
    ANSWER_SECONDS = 1.5  # kept back from the invocation's time for the writes after the last WaveSpeed answer


@logger.inject_lambda_context(clear_state=True, correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not is_route(event):
        return answer(404, {"statusCode": 404, "message": "Not found"})
    # Every WaveSpeed call fits before this deadline: an answer WaveSpeed can retry beats being cut off.
    deadline = Deadline.within(context.get_remaining_time_in_millis() / 1000 - ANSWER_SECONDS)
    try:
        return answer(200, receive(event, deadline, webhook_settings(), webhook_secrets, tracker))
    except HttpError as err:
        return answer(err.status, {"statusCode": err.status, "message": err.message})
    except WaveSpeedError as err:  # WaveSpeed retries unacknowledged webhooks, and the reconciler backs that up
        logger.warning("WaveSpeed unavailable while handling a webhook", extra={"reason": err.message})
        return answer(503, {"message": "WaveSpeed unavailable, retry later"})
