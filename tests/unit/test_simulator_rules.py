"""The simulator's rules for `wavespeed-ai/flux-dev-lora`, without a server: what it accepts, what it prices,
and images that depend on what a real one depends on."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from loradrop_local.simulator.images import CONTENT_TYPES, IMAGE_SIDE, render
from loradrop_local.simulator.model import INFERENCE_MODEL, TRAINER_MODELS, Faults, price_of
from loradrop_local.simulator.validation import validation_error

DOCS_EXAMPLE = {
    "prompt": "a photo of zxq",
    "loras": [{"path": "owner/zxq-lora", "scale": 1.0}],
    "size": "1024*1024",
    "num_inference_steps": 28,
    "guidance_scale": 5.0,
    "num_images": 1,
    "seed": -1,
    "enable_safety_checker": True,
}
LINK = "https://bucket.s3.amazonaws.com/weights/lora.safetensors?X-Amz-Signature=abc"


@pytest.mark.parametrize(
    "body",
    [
        DOCS_EXAMPLE,
        {"prompt": "only a prompt"},
        DOCS_EXAMPLE | {"loras": [{"path": LINK}] * 5, "size": "512*1536", "seed": 0, "output_format": "webp"},
        DOCS_EXAMPLE | {"unknown_field": "ignored, as WaveSpeed does"},
    ],
)
def test_the_documented_bodies_are_accepted(body: dict[str, object]) -> None:
    assert validation_error(INFERENCE_MODEL, body) is None


def test_lora_urls_refused_refuses_a_link_but_not_a_repo_id() -> None:
    with_link = DOCS_EXAMPLE | {"loras": [{"path": "owner/a", "scale": 1}, {"path": LINK, "scale": 1}]}
    assert validation_error(INFERENCE_MODEL, with_link, lora_urls_refused=True) == (
        1401,
        "loras[1].path must be a Hugging Face repo id",
    )
    assert validation_error(INFERENCE_MODEL, DOCS_EXAMPLE, lora_urls_refused=True) is None


def test_each_model_keeps_its_own_rules() -> None:
    assert validation_error(TRAINER_MODELS[0], DOCS_EXAMPLE) == (1400, "data is required")
    assert validation_error(INFERENCE_MODEL, {"data": "https://x/y.zip"}) == (1400, "prompt is required")


def test_images_are_priced_per_image_and_training_per_thousand_steps() -> None:
    assert price_of(INFERENCE_MODEL, {"prompt": "p"}) == 0.025
    assert price_of(INFERENCE_MODEL, {"prompt": "p", "num_images": 3}) == 0.075
    assert price_of(TRAINER_MODELS[0], {"data": "d", "steps": 2000}) == 2.0


def test_an_image_depends_on_prompt_seed_loras_and_index_and_honours_its_format() -> None:
    loras = (("owner/zxq-lora", 1.0),)
    first = render("a photo of zxq", 7, loras, 0, "png")
    assert render.__wrapped__("a photo of zxq", 7, loras, 0, "png") == first  # not the cache's copy: rendered again
    others = [
        render("a photo of zxq!", 7, loras, 0, "png"),
        render("a photo of zxq", 8, loras, 0, "png"),
        render("a photo of zxq", 7, (("owner/other", 1.0),), 0, "png"),
        render("a photo of zxq", 7, loras, 1, "png"),
    ]
    assert first not in others
    for fmt, content_type in CONTENT_TYPES.items():
        image = Image.open(io.BytesIO(render("p", 1, (), 0, fmt)))
        assert (image.format, image.size) == (content_type.split("/")[1].upper(), (IMAGE_SIDE, IMAGE_SIDE))


def test_faults_meant_for_images_are_left_by_training_tasks() -> None:
    faults = Faults()
    assert faults.takes("wavespeed-ai/flux-dev-lora-trainer")
    assert faults.takes("flux-dev-lora")
    faults.images_only = True
    assert not faults.takes("wavespeed-ai/flux-dev-lora-trainer")
    assert not faults.takes("flux-dev-lora-trainer-turbo")
    assert faults.takes("wavespeed-ai/flux-dev-lora")
    assert faults.takes("flux-dev-lora")
    faults.clear()
    assert faults.takes("wavespeed-ai/flux-dev-lora-trainer")
