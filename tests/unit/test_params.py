"""Training parameters from S3 metadata: defaults, ranges, and messages a user can act on."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest

from loradrop.models import InvalidParameters, Task, TrainingParams

DEFAULTS = TrainingParams()


def test_metadata_overrides_defaults() -> None:
    params, warnings = TrainingParams.from_metadata(
        {"trigger-word": " zxq ", "steps": "2500", "learning-rate": "0.001", "lora-rank": "32"}, DEFAULTS
    )
    assert params.trigger_word == "zxq"
    assert (params.steps, params.learning_rate, params.lora_rank) == (2500, Decimal("0.001"), 32)
    assert params.model == "wavespeed-ai/flux-dev-lora-trainer"
    assert warnings == []


def test_unknown_metadata_is_a_warning() -> None:
    _, warnings = TrainingParams.from_metadata({"step": "2000", "mtime": "1"}, DEFAULTS)
    assert warnings == ["ignored unknown metadata: mtime, step"]


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"steps": "999"}, "steps='999' is invalid: must be a whole number from 1000 to 10000"),
        ({"steps": "10001"}, "steps='10001' is invalid"),
        ({"steps": "1e3"}, "steps='1e3' is invalid"),
        ({"steps": "1500.5"}, "steps='1500.5' is invalid"),
        ({"lora-rank": "128"}, "lora-rank='128' is invalid: must be a whole number from 1 to 64"),
        ({"lora-rank": "0"}, "lora-rank='0' is invalid"),
        ({"learning-rate": "0"}, "learning-rate='0' is invalid: must be a number greater than 0 and at most 1"),
        ({"learning-rate": "fast"}, "learning-rate='fast' is invalid"),
        ({"learning-rate": "NaN"}, "learning-rate='NaN' is invalid"),
        ({"learning-rate": "1.5"}, "learning-rate='1.5' is invalid"),
        (
            {"model": "someone/else"},
            "model='someone/else' is invalid: must be one of wavespeed-ai/flux-dev-lora-trainer",
        ),
        ({"trigger-word": ""}, "trigger-word='' is invalid"),
        ({"trigger-word": "x" * 65}, "is invalid: must be 1 to 64 characters"),
        ({"trigger-word": "a\nb"}, "is invalid"),
    ],
)
def test_invalid_values_name_field_value_and_rule(metadata: dict[str, str], expected: str) -> None:
    with pytest.raises(InvalidParameters) as caught:
        TrainingParams.from_metadata(metadata, DEFAULTS)
    assert expected in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidParameters) as caught:
        TrainingParams.from_metadata({"steps": "1", "lora-rank": "99"}, DEFAULTS)
    assert len(caught.value.problems) == 2


def test_wavespeed_body_uses_documented_field_names() -> None:
    body = TrainingParams(steps=1200).to_wavespeed("https://example/zip")
    assert body == {
        "data": "https://example/zip",
        "trigger_word": "p3r5on",
        "steps": 1200,
        "learning_rate": 0.0004,
        "lora_rank": 16,
    }


def test_prediction_picks_safetensors_output_else_first() -> None:
    both = Task(id="t", outputs=["https://cdn/x/log.txt", "https://cdn/x/lora.safetensors?sig=1"])
    assert both.weights_url == "https://cdn/x/lora.safetensors?sig=1"
    assert Task(id="t", outputs=["https://cdn/x/weights.bin"]).weights_url == "https://cdn/x/weights.bin"
    assert Task(id="t", outputs=None).weights_url is None  # type: ignore[arg-type]


def test_prediction_tolerates_unknown_fields_and_statuses() -> None:
    task = Task.model_validate({"id": "t", "status": "quantum", "new_field": 1, "has_nsfw_contents": None})
    assert task.status == "quantum"


@pytest.mark.parametrize(
    ("stored", "meant"),
    [
        ("=?UTF-8?B?em/Dqw==?=", "zoë"),  # what S3 returns for non-ASCII metadata
        ("=?UTF-8?Q?caf=C3=A9_au_lait?=", "café au lait"),
        ("=?utf-8?b?5YaZ55yf?=", "写真"),
        ("plain", "plain"),
        ("=?not-a-charset?B?AAAA?=", "=?not-a-charset?B?AAAA?="),
    ],
)
def test_rfc2047_metadata_is_decoded_before_validation(stored: str, meant: str) -> None:
    params, _ = TrainingParams.from_metadata({"trigger-word": stored}, TrainingParams())
    assert params.trigger_word == meant


def test_an_encoded_value_is_validated_as_decoded() -> None:
    control = "=?UTF-8?B?" + base64.b64encode(b"bad\x07word").decode() + "?="
    with pytest.raises(InvalidParameters, match="trigger-word="):
        TrainingParams.from_metadata({"trigger-word": control}, TrainingParams())
