"""Which job, and once known which WaveSpeed task, a log line is about: every line of a job carries
`job_id` and `prediction_id`. A batch handles several jobs in one invocation, so each switch forgets
the previous job's keys."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(child=True)
_KEYS = ["job_id", "prediction_id"]


def about_job(job_id: str, prediction_id: str | None = None) -> None:
    logger.remove_keys(_KEYS)
    logger.append_keys(job_id=job_id)
    if prediction_id:
        logger.append_keys(prediction_id=prediction_id)


def about_task(prediction_id: str) -> None:
    logger.append_keys(prediction_id=prediction_id)


def forget_job() -> None:
    logger.remove_keys(_KEYS)
