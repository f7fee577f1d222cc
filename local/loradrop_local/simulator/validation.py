"""WaveSpeed's documented parameter rules, one function per model, with its codes (1400 missing, 1401 invalid).

Each returns None for a body it accepts, else (code, message); the messages mimic WaveSpeed's 400 answers.
Fields a model does not know are ignored, as WaveSpeed does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from loradrop_local.simulator.model import INFERENCE_MODEL

MISSING_PARAMETER, INVALID_PARAMETER = 1400, 1401
Problem = tuple[int, str]
NUMBER = (int, float)
MAX_LORAS = 5
MAX_IMAGES = 4  # num_images: the docs give only the default (1); 4 is the usual FLUX limit
IMAGE_FORMATS = ("png", "jpeg", "webp")
_SIZE = re.compile(r"(\d+)\*(\d+)")
_SIDE = (512, 1536)


def trainer_error(body: Any) -> Problem | None:
    """`flux-dev-lora-trainer` (and -turbo): a ZIP URL and the training ranges."""
    if not isinstance(body, dict):
        return INVALID_PARAMETER, "request body must be a JSON object"
    data = body.get("data")
    if data is None or data == "":
        return MISSING_PARAMETER, "data is required"
    if not isinstance(data, str):
        return INVALID_PARAMETER, "data must be a URL"
    return _first(
        _range_error(body, {"steps": (int, 1000, 10000), "learning_rate": (NUMBER, 0, 1), "lora_rank": (int, 1, 64)}),
        _kind_error(body, "trigger_word", lambda value: isinstance(value, str), "must be a string"),
    )


def inference_error(body: Any, *, lora_urls_refused: bool = False) -> Problem | None:
    """`flux-dev-lora`: a prompt, up to five LoRAs and the image's ranges. With `lora_urls_refused`, a LoRA
    `path` must be a Hugging Face repo id (the docs' form): whether WaveSpeed takes an https URL is unknown."""
    if not isinstance(body, dict):
        return INVALID_PARAMETER, "request body must be a JSON object"
    prompt = body.get("prompt")
    if prompt is None or prompt == "":
        return MISSING_PARAMETER, "prompt is required"
    return _first(
        _kind_error(body, "prompt", lambda value: isinstance(value, str), "must be a string"),
        _loras_error(body.get("loras", []), lora_urls_refused),
        _size_error(body["size"]) if "size" in body else None,
        _range_error(body, {"num_inference_steps": (int, 1, 50), "num_images": (int, 1, MAX_IMAGES)}),
        # guidance_scale's range is not documented (the docs show 5.0): any number passes.
        _kind_error(body, "guidance_scale", _is_number, "must be a number"),
        _kind_error(body, "seed", lambda value: _is_int(value) and value >= -1, "must be an integer, -1 for random"),
        _kind_error(body, "enable_safety_checker", lambda value: isinstance(value, bool), "must be a boolean"),
        _kind_error(body, "output_format", IMAGE_FORMATS.__contains__, f"must be one of {', '.join(IMAGE_FORMATS)}"),
    )


def _loras_error(loras: Any, urls_refused: bool) -> Problem | None:
    if not isinstance(loras, list):
        return INVALID_PARAMETER, "loras must be a list"
    if len(loras) > MAX_LORAS:
        return INVALID_PARAMETER, f"loras must hold at most {MAX_LORAS} items"
    return _first(*(_lora_error(f"loras[{index}]", lora, urls_refused) for index, lora in enumerate(loras)))


def _lora_error(name: str, lora: Any, urls_refused: bool) -> Problem | None:
    if not isinstance(lora, dict):
        return INVALID_PARAMETER, f"{name} must be an object with path and scale"
    path = lora.get("path")
    if path is None or path == "":
        return MISSING_PARAMETER, f"{name}.path is required"
    if not isinstance(path, str):
        return INVALID_PARAMETER, f"{name}.path must be a string"
    if urls_refused and is_url(path):
        return INVALID_PARAMETER, f"{name}.path must be a Hugging Face repo id"
    return _kind_error(lora, "scale", _is_number, "must be a number", prefix=f"{name}.")


def _size_error(size: Any) -> Problem | None:
    match = _SIZE.fullmatch(size) if isinstance(size, str) else None
    if match is None or not all(_SIDE[0] <= int(side) <= _SIDE[1] for side in match.groups()):
        return INVALID_PARAMETER, f'size must be "width*height", each between {_SIDE[0]} and {_SIDE[1]}'
    return None


def _range_error(body: dict[str, Any], rules: dict[str, tuple[Any, float, float]]) -> Problem | None:
    for name, (kind, low, high) in rules.items():
        if name in body:
            value = body[name]
            if not _is_number(value) or not isinstance(value, kind) or not low <= float(value) <= high:
                return INVALID_PARAMETER, f"{name} must be between {low} and {high}"
    return None


def _kind_error(
    body: dict[str, Any], name: str, accepts: Callable[[Any], bool], rule: str, prefix: str = ""
) -> Problem | None:
    """An optional field: absent, or a value `accepts` takes; else 1401 saying the rule."""
    if name in body and not accepts(body[name]):
        return INVALID_PARAMETER, f"{prefix}{name} {rule}"
    return None


def _first(*problems: Problem | None) -> Problem | None:
    """The first problem in the order the checks are listed (WaveSpeed answers with one)."""
    return next((problem for problem in problems if problem is not None), None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, NUMBER) and not isinstance(value, bool)


def is_url(path: str) -> bool:
    """A LoRA `path` given as a link to fetch, rather than a Hugging Face repo id (`owner/name`)."""
    return path.startswith(("http://", "https://"))


def validation_error(model: str, body: Any, *, lora_urls_refused: bool = False) -> Problem | None:
    """The rules of `model` (a documented model's id, `wavespeed-ai/...`) for a submitted body."""
    if model == INFERENCE_MODEL:
        return inference_error(body, lora_urls_refused=lora_urls_refused)
    return trainer_error(body)
