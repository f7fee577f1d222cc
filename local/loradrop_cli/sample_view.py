"""How the `loradrop` commands show a job's sample images (`loradrop.samples`): each prompt's state while they
render, and the gallery of downloaded images once they are stored. Pure: samples are dicts as `Sample.public()`
gives them (the job's `samples`, or its rows while they render); `view` puts them in `status`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

# A sample's `state` ("waiting": no row yet, the job's weights are not stored), in the order a sample moves.
SAMPLE_WORDS = {
    "waiting": "waiting for the LoRA",
    "planned": "waiting to be submitted",
    "submitting": "submitting to WaveSpeed",
    "rendering": "rendering on WaveSpeed",
    "storing": "copying the image into S3",
    "done": "stored",
    "failed": "not rendered",
}
SAMPLE_STYLE = {"done": "green", "failed": "red", "rendering": "yellow", "submitting": "yellow", "storing": "cyan"}
ENDED = ("done", "failed")

Sample = dict[str, Any]


def number(sample: Sample) -> int:
    """The sample's number as users see it, from 1: the image's name (`samples/1.png`) and the README's order."""
    return int(sample.get("index", 0)) + 1


def unsettled(samples: Sequence[Sample]) -> list[Sample]:
    return [sample for sample in samples if sample.get("state") not in ENDED]


def counts(samples: Sequence[Sample]) -> str:
    """`1 done, 1 rendering`, in the order a sample moves."""
    found = Counter(str(sample.get("state")) for sample in samples)
    order = [*SAMPLE_WORDS, *sorted(set(found) - set(SAMPLE_WORDS))]  # a state this version does not know, last
    return ", ".join(f"{found[state]} {state}" for state in order if found[state])


def samples_summary(samples: Sequence[Sample], settled_at: str | None) -> str:
    """One line: how many prompts, where they stand, what WaveSpeed quoted for them."""
    quoted = [float(sample["quote_usd"]) for sample in samples if sample.get("quote_usd") is not None]
    price = f" · {sum(quoted):.3f} USD quoted for {len(quoted)}" if quoted else ""
    if settled_at:
        stored = sum(1 for sample in samples if sample.get("state") == "done")
        return f"{stored} of {len(samples)} rendered (settled {settled_at}){price}"
    return f"{len(samples)} prompt(s): {counts(samples)}{price}"


def sample_note(sample: Sample) -> str:
    """Where the image is, or why there is none, or what the sample waits for."""
    state = sample.get("state")
    if sample.get("image_uri"):
        return str(sample["image_uri"])
    if sample.get("error_code") == "SUBMIT_UNCERTAIN" and state == "submitting":
        return "the POST got no usable answer: settling it from WaveSpeed's records (never sent again on a guess)"
    if sample.get("error_code") or sample.get("error"):
        return f"[{sample.get('error_code')}] {sample.get('error')}"
    if sample.get("prediction_id"):
        return f"task {sample['prediction_id']}: {SAMPLE_WORDS.get(str(state), '')}"
    return SAMPLE_WORDS.get(str(state), "")


def state_text(state: str) -> Text:
    return Text(state, style=SAMPLE_STYLE.get(state, ""))


def samples_table(samples: Sequence[Sample]) -> Table:
    """Each sample: its number, state, seed, prompt (as sent), and its image or why not."""
    table = Table(title="samples", title_justify="left", box=None, padding=(0, 2), pad_edge=False)
    for column in ("#", "state", "seed", "prompt", "image or why not"):
        table.add_column(column, no_wrap=column in ("#", "state", "seed"), overflow="fold")
    for sample in samples:
        state = str(sample.get("state", ""))
        seed = str(sample.get("seed", ""))
        table.add_row(str(number(sample)), state_text(state), seed, str(sample.get("prompt", "")), sample_note(sample))
    return table


def gallery(saved: Sequence[tuple[Sample, Path | None]]) -> Table:
    """The downloaded samples: number, prompt, and the local file (each checked against its SHA-256), or why
    there is none."""
    table = Table(box=None, padding=(0, 2), pad_edge=False)
    for column in ("#", "prompt", "file (sha256 verified)"):
        table.add_column(column, no_wrap=column == "#", overflow="fold")
    for sample, path in saved:
        where = str(path) if path else f"not rendered: [{sample.get('error_code')}] {sample.get('error')}"
        table.add_row(str(number(sample)), str(sample.get("prompt", "")), where)
    return table


def where_to_open(saved: Sequence[tuple[Sample, Path | None]], readme: Path | None) -> list[str]:
    """file:// links a terminal lets one click: each image, then the README.md that shows them as a gallery."""
    links = [path.resolve().as_uri() for _, path in saved if path is not None]
    if readme is not None:
        links.append(f"{readme.resolve().as_uri()}  (the model card with the gallery: any Markdown viewer)")
    return links
