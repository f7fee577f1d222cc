"""The simulator plays WaveSpeed's FLUX dev with LoRAs (`wavespeed-ai/flux-dev-lora`), the model loradrop's
sample images come from, with the official SDK (`wavespeed` 2.0.5) as its client where one fits: the task's
lifecycle, its validation and codes, LoRA links fetched while it runs, its images, its price, its webhook."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from wavespeed import Client

from loradrop.signing import verify
from loradrop_local.aws.stack import LocalStack
from loradrop_local.loopback import LoopbackHTTPServer
from loradrop_local.simulator.images import IMAGE_SIDE
from loradrop_local.simulator.model import Task
from loradrop_local.simulator.server import Simulator

pytestmark = pytest.mark.integration
MODEL = "wavespeed-ai/flux-dev-lora"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def sim(stack: LocalStack) -> Simulator:
    assert stack.simulator is not None
    return stack.simulator


@pytest.fixture
def lora_url(stack: LocalStack) -> str:
    """A presigned link to a LoRA stand-in outside uploads/, as loradrop would pass its freshly stored weights."""
    key = f"manual/lora-{uuid.uuid4().hex[:8]}.safetensors"
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.uploads_bucket, Key=key, Body=struct.pack("<Q", 2) + b"{}")
    url: str = s3.generate_presigned_url("get_object", Params={"Bucket": stack.uploads_bucket, "Key": key})
    return url


def sdk(sim: Simulator) -> Client:
    return Client(api_key=sim.config.api_key, base_url=sim.url, retry_interval=0.05)


def body(prompt: str, lora: str, **changes: Any) -> dict[str, Any]:
    """A sample request as the docs show one."""
    return {
        "prompt": prompt,
        "loras": [{"path": lora, "scale": 1.0}],
        "size": "1024*1024",
        "num_inference_steps": 28,
        "guidance_scale": 5.0,
        "num_images": 1,
        "seed": 1234,
        "enable_safety_checker": True,
        "output_format": "png",
    } | changes


def tasks_for(sim: Simulator, prompt: str) -> list[Task]:
    return [t for t in list(sim.tasks.values()) if t.model == MODEL and t.input.get("prompt") == prompt]


def task_of(result: dict[str, Any]) -> str:
    """The task behind the SDK's `run()` answer (it gives only outputs): named in its first image's URL."""
    return str(result["outputs"][0].rsplit("/", 2)[1])


def png_size(image: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR, which must follow its signature."""
    assert image[:8] == PNG_SIGNATURE
    length, kind, width, height = struct.unpack(">I4sII", image[8:24])
    assert (length, kind) == (13, b"IHDR")
    return width, height


def auth(sim: Simulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.config.api_key}"}


def test_sdk_gets_pngs_that_match_what_the_simulator_expects(sim: Simulator, lora_url: str) -> None:
    prompt = f"a photo of zxq on a beach {uuid.uuid4().hex[:6]}"
    result = sdk(sim).run(MODEL, body(prompt, lora_url, num_images=2), poll_interval=0.05, timeout=30)
    (task,) = tasks_for(sim, prompt)
    assert [url.rsplit("/", 2)[1:] for url in result["outputs"]] == [[task.id, "0.png"], [task.id, "1.png"]]
    assert task.loras_fetched == 1
    assert task.seed == 1234
    for index, url in enumerate(result["outputs"]):
        answer = httpx.get(url, timeout=10)
        assert answer.headers["content-type"] == "image/png"
        assert png_size(answer.content) == (IMAGE_SIDE, IMAGE_SIDE)
        assert (len(answer.content), hashlib.sha256(answer.content).hexdigest()) == sim.expected_image(task.id, index)
    assert sim.expected_image(task.id, 0) != sim.expected_image(task.id, 1)


def test_same_prompt_seed_and_lora_give_the_same_bytes(sim: Simulator, lora_url: str) -> None:
    prompt = f"same {uuid.uuid4().hex[:6]}"
    first = sdk(sim).run(MODEL, body(prompt, lora_url), poll_interval=0.05, timeout=30)
    again = sdk(sim).run(MODEL, body(prompt, lora_url), poll_interval=0.05, timeout=30)
    other_seed = sdk(sim).run(MODEL, body(prompt, lora_url, seed=1235), poll_interval=0.05, timeout=30)
    digests = [hashlib.sha256(httpx.get(r["outputs"][0], timeout=10).content).hexdigest() for r in (first, again)]
    assert digests[0] == digests[1]
    assert first["outputs"] != again["outputs"]  # two tasks, two URLs, one picture
    assert sim.expected_image(task_of(other_seed))[1] != digests[0]


def test_seed_minus_one_is_drawn_and_the_input_stays_as_submitted(sim: Simulator) -> None:
    prompt = f"random seed {uuid.uuid4().hex[:6]}"
    result = sdk(sim).run(MODEL, {"prompt": prompt, "seed": -1}, poll_interval=0.05, timeout=30)
    (task,) = tasks_for(sim, prompt)
    assert task.input["seed"] == -1
    assert task.seed is not None
    assert task.seed >= 0
    image = httpx.get(result["outputs"][0], timeout=10).content
    assert hashlib.sha256(image).hexdigest() == sim.expected_image(task.id, 0)[1]


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [
        ({"prompt": None}, 1400, "prompt is required"),
        ({"prompt": 7}, 1401, "prompt"),
        ({"loras": [{"scale": 1.0}]}, 1400, "loras[0].path is required"),
        ({"loras": [{"path": "a/b", "scale": 1.0}] * 6}, 1401, "at most 5"),
        ({"loras": [{"path": "a/b", "scale": "high"}]}, 1401, "loras[0].scale"),
        ({"size": "1024x1024"}, 1401, "size"),
        ({"size": "1024*1537"}, 1401, "size"),
        ({"num_inference_steps": 51}, 1401, "num_inference_steps"),
        ({"num_images": 0}, 1401, "num_images"),
        ({"seed": 1.5}, 1401, "seed"),
        ({"enable_safety_checker": "yes"}, 1401, "enable_safety_checker"),
        ({"output_format": "gif"}, 1401, "output_format"),
    ],
)
def test_a_bad_body_is_a_400_with_wavespeeds_code_and_no_task(
    sim: Simulator, changes: dict[str, Any], code: int, words: str
) -> None:
    prompt = f"refused {uuid.uuid4().hex[:6]}"
    sent = {k: v for k, v in (body(prompt, "owner/lora") | changes).items() if v is not None}
    answer = httpx.post(f"{sim.url}/api/v3/{MODEL}", json=sent, headers=auth(sim), timeout=10)
    assert (answer.status_code, answer.json()["error_code"]) == (400, code)
    assert words in answer.json()["message"]
    assert tasks_for(sim, prompt) == []


def test_a_lora_link_that_404s_fails_the_task_with_1402(stack: LocalStack, sim: Simulator) -> None:
    s3 = stack.client("s3")
    missing = s3.generate_presigned_url("get_object", Params={"Bucket": stack.uploads_bucket, "Key": "manual/gone"})
    prompt = f"missing lora {uuid.uuid4().hex[:6]}"
    loras = [{"path": "owner/style", "scale": 0.5}, {"path": missing, "scale": 1.0}]
    result = sdk(sim).run_no_throw(MODEL, body(prompt, missing, loras=loras), poll_interval=0.05, timeout=30)
    (task,) = tasks_for(sim, prompt)
    assert result["status"] == "failed"
    assert (task.status, task.code, task.outputs) == ("failed", 1402, [])
    assert task.error.startswith("loras[1].path")  # names the LoRA, not its presigned link
    assert "X-Amz" not in task.error


def test_lora_urls_refused_refuses_a_link_at_the_post_and_takes_a_repo_id(sim: Simulator, lora_url: str) -> None:
    prompt = f"urls refused {uuid.uuid4().hex[:6]}"
    sim.config.lora_urls_refused = True
    try:
        refused = httpx.post(f"{sim.url}/api/v3/{MODEL}", json=body(prompt, lora_url), headers=auth(sim), timeout=10)
        assert tasks_for(sim, prompt) == []
        taken = sdk(sim).run(MODEL, body(prompt, "owner/zxq-lora"), poll_interval=0.05, timeout=30)
    finally:
        sim.config.lora_urls_refused = False
    assert (refused.status_code, refused.json()["error_code"]) == (400, 1401)
    assert refused.json()["message"] == "loras[0].path must be a Hugging Face repo id"
    (task,) = tasks_for(sim, prompt)
    assert task.loras_fetched == 0  # a repo id is taken as found: the simulator never reaches the Hub
    assert len(taken["outputs"]) == 1


def test_priced_per_image_and_each_task_spends_its_price(sim: Simulator) -> None:
    def price(inputs: dict[str, Any]) -> float:
        asked = {"model_id": MODEL, "inputs": inputs}
        answer = httpx.post(f"{sim.url}/api/v3/model/pricing", json=asked, headers=auth(sim), timeout=10).json()
        assert answer["data"]["currency"] == "USD"
        return float(answer["data"]["unit_price"])

    assert price({"prompt": "p"}) == 0.025
    assert price({"prompt": "p", "num_images": 4}) == 0.1
    before = httpx.get(f"{sim.url}/api/v3/balance", headers=auth(sim), timeout=10).json()["data"]["balance"]
    sdk(sim).run(MODEL, {"prompt": "two images", "num_images": 2}, poll_interval=0.05, timeout=30)
    after = httpx.get(f"{sim.url}/api/v3/balance", headers=auth(sim), timeout=10).json()["data"]["balance"]
    assert round(before - after, 4) == 0.05


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A webhook endpoint on loopback that keeps what it receives."""
    received: list[tuple[dict[str, str], bytes]] = []

    class Keep(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((dict(self.headers), self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = LoopbackHTTPServer(("127.0.0.1", 0), Keep)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_image_task_sends_a_signed_webhook_with_its_input(
    sim: Simulator, lora_url: str, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    hook, received = receiver
    prompt = f"webhook {uuid.uuid4().hex[:6]}"
    posted = httpx.post(
        f"{sim.url}/api/v3/{MODEL}", params={"webhook": hook}, json=body(prompt, lora_url), headers=auth(sim)
    )
    task_id = posted.json()["data"]["id"]
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.02)
    ((headers, raw),) = received
    assert verify(headers, raw, sim.config.webhook_secret, now=time.time(), tolerance=300) == task_id
    delivered = json.loads(raw)
    assert (delivered["status"], delivered["model"]) == ("completed", MODEL)
    assert delivered["input"] == body(prompt, lora_url)  # the body as submitted, presigned LoRA link and all
    assert delivered["outputs"] == [f"{sim.url}/outputs/{task_id}/0.png"]


def test_the_trainers_faults_apply_to_image_tasks(sim: Simulator) -> None:
    prompt = f"faults {uuid.uuid4().hex[:6]}"
    sim.faults.task.append((5003, "service unavailable"))
    failed = sdk(sim).run_no_throw(MODEL, {"prompt": prompt}, poll_interval=0.05, timeout=30)
    assert failed["status"] == "failed"
    sim.faults.download.extend(["vanish", "truncate"])
    done = sdk(sim).run(MODEL, {"prompt": prompt}, poll_interval=0.05, timeout=30)
    assert httpx.get(done["outputs"][0], timeout=10).status_code == 404
    with pytest.raises(httpx.RemoteProtocolError):  # half the image, then the connection closes
        httpx.get(done["outputs"][0], timeout=10)
    image = httpx.get(done["outputs"][0], timeout=10).content
    assert hashlib.sha256(image).hexdigest() == sim.expected_image(task_of(done))[1]
    listed = httpx.post(
        f"{sim.url}/api/v3/predictions", json={"page": 1, "page_size": 100, "model": MODEL}, headers=auth(sim)
    ).json()["data"]["items"]
    assert {item["model"] for item in listed} == {MODEL}
    assert {task_of(done), failed["task_id"]} <= {item["id"] for item in listed}
    assert [t.code for t in tasks_for(sim, prompt) if t.status == "failed"] == [5003]
