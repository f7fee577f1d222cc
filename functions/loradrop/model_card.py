"""The model card written beside the weights: `model-card.json` for tools, `README.md` for people.

Everything needed to use, trust and reproduce the LoRA: the trigger word (and whether the trainer used it),
every training parameter, the trainer and its task, the dataset survey, the source object, the weights'
size, SHA-256 and safetensors header, and how long each phase took.
"""

from __future__ import annotations

import json
from typing import Any

from loradrop.job import Job, parse_iso
from loradrop.models import JobStatus, Task
from loradrop.weights import StoredWeights

CARD_NAME = "model-card.json"
README_NAME = "README.md"
CARD_VERSION = 1
_PARAMETERS = ("steps", "learning_rate", "lora_rank")


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)


def _timings(job: Job, stored_at: str) -> dict[str, Any]:
    submitted, storing = job.entered(JobStatus.SUBMITTED), job.entered(JobStatus.STORING)
    return {
        "received_at": job.created_at,
        "submitted_at": submitted,
        "trained_at": storing,
        "stored_at": stored_at,
        # Waiting for a submission slot (WaveSpeed's rate limit) and the POST itself.
        "queued_seconds": _seconds(job.created_at, submitted),
        # WaveSpeed's own queue and the training, as the webhook or the reconciler saw it end.
        "training_seconds": _seconds(submitted, storing),
        "storing_seconds": _seconds(storing, stored_at),
    }


def _wavespeed_timing(task: Task) -> dict[str, Any]:
    extra = task.model_extra or {}
    timings = extra.get("timings")
    inference = timings.get("inference") if isinstance(timings, dict) else None
    found: dict[str, Any] = {}
    if isinstance(inference, int | float) and not isinstance(inference, bool):
        found["inference_ms"] = inference
    if isinstance(extra.get("executionTime"), int | float):
        found["execution_ms"] = extra["executionTime"]
    return found


def trigger_in_captions(dataset: dict[str, Any]) -> str | None:
    """Whether the captions mention the trigger word: "all", "some" or "none" of those with text; None when
    there are no captions, or the survey predates the check."""
    with_text, mentioning = dataset.get("captions_with_text"), dataset.get("captions_mentioning_trigger")
    if not with_text or mentioning is None:
        return None
    return "all" if mentioning == with_text else "some" if mentioning else "none"


def build_card(job: Job, task: Task, stored: StoredWeights, stored_at: str) -> dict[str, Any]:
    """The card of a job whose weights were just stored."""
    params = job.public().get("params", {})
    dataset = job.public().get("dataset", {})
    captions = dataset.get("captions", (job.archive or {}).get("captions", 0))
    return {
        "card_version": CARD_VERSION,
        "name": job.job_id,
        "trigger_word": params.get("trigger_word"),
        # WaveSpeed: "if captions are provided the trigger word will not be used".
        "trigger_word_used": not captions,
        # With captions, the LoRA answers to the trigger word only as far as the captions say it.
        "trigger_word_in_captions": trigger_in_captions(dataset) if captions else None,
        "parameters": {key: params[key] for key in _PARAMETERS if key in params},
        "trainer": {"provider": "WaveSpeed", "model": params.get("model"), "task_id": task.id}
        | ({"task_created_at": task.created_at} if task.created_at else {})
        | _wavespeed_timing(task),
        "dataset": dataset,
        "source": {
            "bucket": job.source_bucket,
            "key": job.source_key,
            "version": job.source_version,
            "etag": job.source_etag,
            "size": job.source_size,
        },
        "weights": {
            "uri": f"s3://{stored.bucket}/{stored.key}",
            "file": stored.key.rsplit("/", 1)[-1],
            "size": stored.size,
            "sha256": stored.sha256,
            "safetensors": stored.safetensors,
        },
        "timings": _timings(job, stored_at),
        "warnings": job.warnings,
        "attempts": job.attempts,
        # WaveSpeed's quote for the task, asked before it was paid for (None: WaveSpeed gave none)
        "quote_usd": job.public().get("quote_usd"),
    }


def card_warnings(card: dict[str, Any]) -> list[str]:
    """What the card found wrong with the weights file itself."""
    header = card["weights"]["safetensors"]
    if not header.get("valid"):
        return [f"the weights file is {header.get('problem', 'not a safetensors file')}: check it before use"]
    if not header.get("matches_size"):
        return [
            f"the safetensors header describes {header['expected_bytes']:,} bytes but the file has "
            f"{card['weights']['size']:,}: the file may be damaged at WaveSpeed"
        ]
    return []


def card_files(card: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """The card's two files as written beside the weights: (name, body, content type)."""
    return [
        (CARD_NAME, card_json(card), "application/json; charset=utf-8"),
        (README_NAME, card_readme(card), "text/markdown; charset=utf-8"),
    ]


def card_json(card: dict[str, Any]) -> bytes:
    return json.dumps(card, indent=2, ensure_ascii=False, default=str).encode("utf-8")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _size_range(dataset: dict[str, Any]) -> str:
    smallest, largest = dataset["smallest"], dataset["largest"]
    return str(smallest) if smallest == largest else f"{smallest} to {largest}"


def _usage(card: dict[str, Any]) -> str:
    """How to prompt the LoRA: with the trigger word the trainer used, or with what the captions said."""
    trigger, mentioned = card["trigger_word"], card.get("trigger_word_in_captions")
    if card["trigger_word_used"]:
        return f"**Trigger word:** `{trigger}` — put it in your prompts, e.g. `a photo of {trigger}`."
    said = "**Captions:** the dataset had captions, so WaveSpeed trained on them and ignored the trigger word"
    dataset = card.get("dataset", {})
    if mentioned == "all":
        return f"{said}; every caption mentions `{trigger}`, so the LoRA answers to it: e.g. `a photo of {trigger}`."
    if mentioned == "some":
        return (
            f"{said}; only {dataset.get('captions_mentioning_trigger')} of {dataset.get('captions_with_text')} "
            f"captions mention `{trigger}`, so the LoRA may answer to it only weakly: prompt with your captions' words."
        )
    if mentioned == "none":
        return (
            f"{said}; none of them mentions `{trigger}`, so the LoRA will not answer to it: prompt with the words "
            "your captions used."
        )
    return f"{said}: prompt with the words your captions used."


def card_readme(card: dict[str, Any]) -> bytes:
    """A short page a person can read."""
    weights, trainer, trigger = card["weights"], card["trainer"], card["trigger_word"]
    answers = card["trigger_word_used"] or card.get("trigger_word_in_captions") == "all"
    prompt = f"a photo of {trigger}" if answers else "a photo of ... (in your captions' words)"
    usage = _usage(card)
    rows = _rows(card)
    lines = [
        f"# LoRA `{card['name']}`",
        "",
        f"A FLUX.1 [dev] LoRA trained by WaveSpeed's `{trainer['model']}` and stored by loradrop.",
        "",
        usage,
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in rows),
        "",
        "## Use it",
        "",
        "With diffusers:",
        "",
        "```python",
        "import torch",
        "from diffusers import FluxPipeline",
        "",
        'pipe = FluxPipeline.from_pretrained("black-forest-labs/FLUX.1-dev", torch_dtype=torch.bfloat16)',
        f'pipe.load_lora_weights("{weights["file"]}")',
        f'image = pipe("{prompt}").images[0]',
        "```",
        "",
        f"Check the file first: `sha256sum {weights['file']}` must print `{weights['sha256']}`.",
    ]
    if card.get("samples"):
        lines += ["", *_gallery(card["samples"])]
    if card["warnings"]:
        lines += ["", "## Warnings", "", *(f"- {warning}" for warning in card["warnings"])]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _gallery(samples: list[dict[str, Any]]) -> list[str]:
    """The sample images (`loradrop.samples`), beside this page in `samples/`, each with its prompt and seed; a sample
    that was not rendered says why."""
    lines = ["## Samples", "", "Rendered by WaveSpeed's `wavespeed-ai/flux-dev-lora` with this LoRA at scale 1.0:", ""]
    for sample in samples:
        prompt = str(sample.get("prompt", "")).replace("|", "/").replace("\n", " ")
        if sample.get("image_uri"):
            relative = "/".join(str(sample["image_uri"]).split("/")[-2:])
            lines += [
                f"![{prompt}]({relative})",
                "",
                f"`{prompt}` (seed {sample.get('seed')}, SHA-256 `{sample.get('image_sha256')}`)",
                "",
            ]
        else:
            lines += [f"- `{prompt}`: not rendered ([{sample.get('error_code')}] {sample.get('error')})", ""]
    return lines[:-1]


def _rows(card: dict[str, Any]) -> list[tuple[str, str]]:
    """The card's facts table."""
    weights, header, trainer = card["weights"], card["weights"]["safetensors"], card["trainer"]
    params, dataset, timings = card["parameters"], card["dataset"], card["timings"]
    tensors = (
        f"{header['tensors']} ({', '.join(f'{k} {v}' for k, v in header['dtypes'].items())}), "
        f"{header['parameters'] / 1e6:.1f} M parameters"
        if header.get("valid")
        else header.get("problem", "not a safetensors file")
    )
    rows = [
        ("weights", f"`{weights['file']}`, {weights['size']:,} bytes"),
        ("SHA-256", f"`{weights['sha256']}`"),
        ("tensors", tensors),
        (
            "steps / learning rate / rank",
            " / ".join(str(params.get(k, "?")) for k in _PARAMETERS),
        ),
        ("trainer", f"WaveSpeed `{trainer['model']}`, task `{trainer['task_id']}`"),
        ("source", f"`s3://{card['source']['bucket']}/{card['source']['key']}`"),
        (
            "timings",
            f"queued {_duration(timings['queued_seconds'])}, trained {_duration(timings['training_seconds'])}, "
            f"stored {_duration(timings['storing_seconds'])}",
        ),
    ]
    if card.get("quote_usd") is not None:
        rows.append(("price", f"{card['quote_usd']:.2f} USD, WaveSpeed's quote before the task was started"))
    if dataset:
        rows.insert(
            4,
            (
                "dataset",
                f"{dataset.get('images')} images ({dataset.get('distinct')} distinct, {dataset.get('usable')} usable), "
                + ", ".join(f"{k} {v}" for k, v in dataset.get("formats", {}).items())
                + (f", {_size_range(dataset)}" if "smallest" in dataset else ""),
            ),
        )
    return rows
