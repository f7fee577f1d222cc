"""`loradrop` as a user runs it: `local` and `demo` as real processes, the other commands against them."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from loradrop.jobs import JobStore
from loradrop.samples import SampleStatus, sample_key
from loradrop_cli.cli import main
from loradrop_local.aws.stack import LocalStack
from loradrop_local.dataset import png, training_zip
from tests.integration.helpers import posts_for
from tests.integration.test_dataset_insight import macos_set

pytestmark = pytest.mark.integration


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`loradrop local` in its own process, as a user would start it."""
    state = tmp_path_factory.mktemp("state")
    process = subprocess.Popen(
        [sys.executable, "-m", "loradrop_cli", "--state-dir", str(state), "local"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"POWERTOOLS_LOG_LEVEL": "WARNING"},
    )
    deadline = time.monotonic() + 30
    while not (state / "local.json").exists():
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        assert time.monotonic() < deadline, "loradrop local did not start"
        time.sleep(0.1)
    yield state
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "AWS_ENDPOINT_URL=http://127.0.0.1:" in output
    assert f"AWS_SHARED_CREDENTIALS_FILE={state / 'credentials'} AWS_PROFILE=loradrop-local" in output
    assert re.search(r"not emulated .*AWS::CloudWatch::Alarm x\d+", output)  # listed, not silently skipped
    assert "stopped" in output
    assert not (state / "local.json").exists()
    assert not (state / "credentials").exists()


def test_submit_folder_wait_and_download(local_stack: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ana"
    folder.mkdir()
    for i in range(5):
        (folder / f"ana_{i}.png").write_bytes(png(32, 32, i))
        (folder / f"ana_{i}.txt").write_text(f"a photo of zxq {i}")
    (folder / ".DS_Store").write_bytes(b"junk")
    weights = tmp_path / "ana.safetensors"
    code, output = run(
        "--state-dir",
        str(local_stack),
        "submit",
        str(folder),
        "--trigger-word",
        "zxq",
        "--lora-rank",
        "8",
        "--wait",
        "-o",
        str(weights),
    )
    assert code == 0, output
    assert "COMPLETED" in output
    assert "5 images: 5 distinct, 5 usable · PNG 5 · 32x32" in output
    assert "5 of 5 captioned" in output
    assert "lora_rank=8" in output
    sha = re.search(r"sha256\s+([0-9a-f]{64})", output)
    assert sha is not None
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == sha.group(1)
    assert "sha256 verified" in output


def test_submit_zip_then_jobs_status_and_fetch(
    local_stack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "bob.zip"
    archive.write_bytes(training_zip(images=4))
    code, output = run("--state-dir", str(local_stack), "submit", str(archive), "--steps", "1200")
    assert code == 0, output
    job_id = re.search(r"job id   (\S+)", output).group(1)  # type: ignore[union-attr]
    deadline = time.monotonic() + 20
    while True:
        code, output = run("--state-dir", str(local_stack), "status", job_id, "--json")
        if code == 0 and json.loads(output)["status"] == "COMPLETED":
            break
        assert time.monotonic() < deadline, output
        time.sleep(0.2)
    job = json.loads(output)
    assert job["params"]["steps"] == 1200
    code, output = run("--state-dir", str(local_stack), "jobs", "--status", "COMPLETED")
    assert code == 0
    assert output.splitlines()[0].split() == ["NAME", "JOB", "STATUS", "AGE", "DURATION", "IMAGES", "NOTE"]
    row = next(line.split() for line in output.splitlines() if job_id in line)
    assert row[:3] == ["bob.zip", job_id, "COMPLETED"]
    assert row[-1] == job["weights_uri"]
    code, output = run("--state-dir", str(local_stack), "jobs", "--json", "--limit", "500")
    assert code == 0
    assert job_id in [listed["job_id"] for listed in json.loads(output)]
    code, output = run("--state-dir", str(local_stack), "status", job_id)
    assert code == 0  # the exit code says COMPLETED
    lines = output.splitlines()
    timeline = lines[lines.index("history") + 1 :]
    assert timeline[0].split() == ["at", "after", "status", "what", "happened"]
    assert [line.split()[3] for line in timeline[1:]] == ["RECEIVED", "SUBMITTING", "SUBMITTED", "STORING", "COMPLETED"]
    time_line = next(line for line in lines if line.startswith("time "))
    assert re.match(r"time\s+queue \d+\.\d s · training \d+\.\d s · storing \d+\.\d s", time_line)
    target = tmp_path / "bob.safetensors"
    code, output = run("--state-dir", str(local_stack), "fetch", job_id, "-o", str(target), "--card")
    assert code == 0, output
    assert hashlib.sha256(target.read_bytes()).hexdigest() == job["weights_sha256"]
    assert not (tmp_path / "bob.safetensors.part").exists()
    card = json.loads((tmp_path / "bob.model-card.json").read_text())
    assert (card["name"], card["weights"]["sha256"], card["parameters"]["steps"]) == (
        job_id,
        job["weights_sha256"],
        1200,
    )
    assert f"`{job['weights_sha256']}`" in (tmp_path / "bob.README.md").read_text()
    # A job that asked for no sample images says so, and nothing is saved
    code, output = run(
        "--state-dir", str(local_stack), "fetch", job_id, "-o", str(tmp_path / "b2.safetensors"), "--samples"
    )
    assert code == 2
    assert f"job {job_id} asked for no sample images: ask for them when uploading" in capsys.readouterr().err
    assert not (tmp_path / "b2.safetensors").exists()
    assert not (tmp_path / "samples").exists()


def test_rejected_upload_is_reported_with_its_reason(local_stack: Path, tmp_path: Path) -> None:
    archive = tmp_path / "notes.zip"
    archive.write_bytes(b"not a zip at all")
    code, output = run("--state-dir", str(local_stack), "submit", str(archive), "--wait", "--timeout", "20")
    assert code == 3  # REJECTED, as --help documents
    assert "REJECTED" in output
    assert "not a ZIP archive" in output
    job_id = re.search(r"job id   (\S+)", output).group(1)  # type: ignore[union-attr]
    assert run("--state-dir", str(local_stack), "status", job_id)[0] == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "/no/such/folder"], "does not exist"),
        (["submit", "pyproject.toml"], "is not a .zip file or a folder"),
        (["submit", ".", "--lora-rank", "99"], "lora-rank=99 is invalid: must be a whole number from 1 to 64"),
        (["submit", ".", "--learning-rate", "2"], "learning-rate='2' is invalid"),
        (["submit", ".", "--sample-prompt", "zxq | a second"], "a --sample-prompt cannot contain |"),
        (
            ["submit", ".", *[arg for n in range(5) for arg in ("--sample-prompt", f"zxq {n}")]],
            "invalid --sample-prompt (5 prompts): sample-prompts must be at most 4 prompts separated by |, each at "
            "most 500 characters",
        ),
        (["submit", ".", "--sample-prompt", "z" * 501], "too long or with control characters"),
        (["status", "no-such-job"], "no job 'no-such-job'"),
        (["fetch", "no-such-job", "-o", "/tmp/x"], "no job 'no-such-job'"),
    ],
)
def test_bad_arguments_say_what_to_do(
    local_stack: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run("--state-dir", str(local_stack), *argv)
    assert code == 2
    assert message in capsys.readouterr().err


def test_no_local_stack_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run("--state-dir", str(tmp_path), "jobs")
    assert code == 2
    error = capsys.readouterr().err
    assert "no local stack is running" in error
    assert "start one with `loradrop local`" in error


def test_output_needs_wait(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("submit", ".", "-o", "x.safetensors")[0] == 2
    assert "-o/--output needs --wait" in capsys.readouterr().err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for command in ("local", "demo", "submit", "jobs", "status", "fetch"):
        assert command in text
    assert "3  the job was REJECTED" in text  # exit codes a script can rely on
    with pytest.raises(SystemExit):
        main(["submit", "--help"])
    submit_help = " ".join(capsys.readouterr().out.split())
    assert "--trigger-word" in submit_help
    assert "--sample-prompt TEXT a prompt to render with the new LoRA once it is trained: one paid" in submit_help
    with pytest.raises(SystemExit):
        main(["fetch", "--help"])
    assert "--samples also save the job's sample images beside it, in samples/" in " ".join(
        capsys.readouterr().out.split()
    )


def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    """What `make demo` runs, as a separate process (no terminal, as in CI)."""
    result = subprocess.run(
        [sys.executable, "-m", "loradrop_cli", "--state-dir", str(tmp_path), "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "COMPLETED" in result.stdout
    assert "Job Completed  source=loradrop" in result.stdout
    sha = re.search(r"sha256\s+([0-9a-f]{64})", result.stdout).group(1)  # type: ignore[union-attr]
    (weights,) = tmp_path.glob("*/*.safetensors")  # a folder per job
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == sha
    assert weights.stat().st_size == 24 * 1024 * 1024
    # The dataset survey and the model card are shown, and the card describes the same file
    assert "8 images: 8 distinct, 8 usable · JPEG 8 · 1024x1024" in result.stdout
    (card_file,) = tmp_path.glob("*/*.model-card.json")
    card = json.loads(card_file.read_text())
    assert card["weights"]["sha256"] == sha
    assert f"{card['weights']['safetensors']['tensors']} tensors" in result.stdout
    # And the two sample images rendered with the LoRA: their progress, event, and a gallery of the files saved
    assert re.search(r"\[\d\d:\d\d\] samples\s+2 done", result.stdout)
    assert "Samples Ready  source=loradrop" in result.stdout
    folder = weights.parent
    assert [(s["prompt"], s["state"]) for s in card["samples"]] == [
        ("a portrait of zxq in a garden", "done"),
        ("zxq on a beach at sunset", "done"),
    ]
    for sample in card["samples"]:
        image = folder / "samples" / f"{sample['index'] + 1}.png"
        assert hashlib.sha256(image.read_bytes()).hexdigest() == sample["image_sha256"]
        assert re.search(rf"\n{sample['index'] + 1}\s+{sample['prompt']}\s+{image}\n", result.stdout)
    links = re.findall(r"\]\((samples/\d\.png)\)", next(folder.glob("*.README.md")).read_text())
    assert links == ["samples/1.png", "samples/2.png"]
    assert all((folder / link).is_file() for link in links)  # the saved README's gallery shows the saved images
    assert "Open them" not in result.stdout  # links to click are for a terminal


def test_retry_copies_a_failed_store_again_and_resubmits_a_retryable_failure(
    stack: LocalStack, key: str, tmp_path: Path
) -> None:
    assert stack.simulator is not None
    stack.write_state(tmp_path)
    # Given a job whose weights could not be copied on any try (the output was gone each time)
    stack.simulator.faults.download.extend(["vanish"] * 5)
    job_id = stack.upload(key, training_zip())
    failed = stack.wait_for(job_id, {"COMPLETED", "FAILED", "REJECTED"}, timeout=40)
    assert failed["error_code"] == "STORE_FAILED"
    assert f"loradrop retry {job_id}" in failed["error"]
    assert len(stack.dead_letters_for("StoreDeadLetterQueue", job_id)) == 1
    # When the user retries it (the output is back)
    code, out = run("--state-dir", str(tmp_path), "retry", job_id, "--wait", "--timeout", "60")
    # Then the same task's weights are copied: COMPLETED, no new task
    assert code == 0, out
    assert f"copying the weights of task {failed['prediction_id']} again" in out
    job = stack.job(job_id)
    assert job is not None
    assert job["status"] == "COMPLETED"
    assert job["weights_sha256"] == stack.simulator.expected_output(failed["prediction_id"])[1]
    assert any(h.get("note") == "copy retried after [STORE_FAILED]" for h in job["history"])
    assert len(posts_for(stack, key)) == 1

    # Given a job WaveSpeed failed retryably on every attempt (5003, MAX_ATTEMPTS=2)
    other = key.replace(".zip", "-b.zip")
    stack.simulator.faults.task.extend([(5003, "unavailable"), (5003, "unavailable")])
    other_id = stack.upload(other, training_zip())
    failed = stack.wait_for(other_id, {"COMPLETED", "FAILED", "REJECTED"}, timeout=40)
    assert failed["error_code"] == "5003"
    # When the user retries it, a new (paid) task trains
    code, out = run("--state-dir", str(tmp_path), "retry", other_id, "--wait", "--timeout", "60")
    assert code == 0, out
    assert "starts a new, paid training task" in out
    job = stack.job(other_id)
    assert job is not None
    assert job["status"] == "COMPLETED"
    assert job["attempts"] == 3
    assert len(posts_for(stack, other)) == 3


def test_retry_refuses_what_needs_a_new_upload(
    stack: LocalStack, key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack.write_state(tmp_path)
    job_id = stack.upload(key, b"not a zip at all")
    stack.wait_for(job_id, {"REJECTED"})
    code, out = run("--state-dir", str(tmp_path), "retry", job_id)
    assert code == 2
    assert out == ""
    assert f"job {job_id} cannot be retried: it is REJECTED" in capsys.readouterr().err


def test_the_local_admin_profile_reaches_the_stack_and_nothing_else_does(
    local_stack: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the profile `loradrop local` wrote, used the way it prints (any SDK, or the AWS CLI)
    state = json.loads((local_stack / "local.json").read_text())
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(local_stack / "credentials"))
    session = boto3.session.Session(profile_name="loradrop-local", region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=state["endpoint"])
    # Then it lists the uploads bucket, and made-up keys are refused (IAM is enforced)
    assert s3.list_objects_v2(Bucket=state["names"]["UploadsBucket"])["ResponseMetadata"]["HTTPStatusCode"] == 200
    stranger = boto3.client(
        "s3",
        endpoint_url=state["endpoint"],
        region_name="us-east-1",
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="x",
    )
    with pytest.raises(ClientError) as refused:
        stranger.list_objects_v2(Bucket=state["names"]["UploadsBucket"])
    assert refused.value.response["Error"]["Code"] == "InvalidAccessKeyId"


class Terminal(io.StringIO):
    """Output that says it is a terminal, as a user's shell is: rich draws its bars and live line."""

    def isatty(self) -> bool:
        return True


def test_on_a_terminal_transfers_show_progress_and_waiting_a_live_line(local_stack: Path, tmp_path: Path) -> None:
    archive = tmp_path / "cleo.zip"
    archive.write_bytes(training_zip(images=4, size=512, kind="JPEG"))
    weights = tmp_path / "cleo.safetensors"
    out = Terminal()
    code = main(["--state-dir", str(local_stack), "submit", str(archive), "--wait", "-o", str(weights)], out)
    assert code == 0
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # what the terminal displays, colours aside
    assert re.search(r"uploading\s+━+\s+([\d.]+)/\1 kB", shown)  # a bar that ends with every byte sent
    assert re.search(r"downloading\s+━+\s+1\.0/1\.0 MB", shown)
    assert re.search(r"\[\d\d:\d\d\] COMPLETED\s+completed\s+queue \d+\.\d s · training", shown)
    assert "\x1b[" in out.getvalue()  # coloured


def test_submit_fix_uploads_a_clean_archive_that_trains_without_the_findings(stack: LocalStack, tmp_path: Path) -> None:
    stack.write_state(tmp_path)
    # Given a ZIP made by macOS Archive Utility, with an iPhone photo stored turned and a Latin-1 caption
    archive = tmp_path / "mac.zip"
    archive.write_bytes(macos_set())
    # When it is submitted with --fix
    code, output = run("--state-dir", str(tmp_path), "submit", str(archive), "--trigger-word", "zxq", "--fix", "--wait")
    # Then what was fixed is printed, and the job trains on a clean archive: no junk, nothing turned, UTF-8
    assert code == 0, output
    assert "  fixed    12 junk entries left out" in output
    assert "  fixed    set/IMG_0042.jpg: turned upright (EXIF orientation 6)" in output
    assert "checked the dataset for trigger word 'zxq': no finding(s)" in output
    job_id = re.search(r"job id   (\S+)", output).group(1)  # type: ignore[union-attr]
    job = stack.job(job_id)
    assert job is not None
    assert (job["status"], job["warnings"], job["archive"]["junk"]) == ("COMPLETED", [], 0)
    uploaded = stack.client("s3").get_object(Bucket=stack.uploads_bucket, Key="uploads/mac.zip")["Body"].read()
    with zipfile.ZipFile(io.BytesIO(uploaded)) as clean:
        assert not any("__MACOSX" in name or ".DS_Store" in name for name in clean.namelist())
        assert clean.read("set/IMG_0042.txt").decode() == "zxq in a café"


def test_sample_prompts_asked_at_submit_are_shown_while_they_render_and_fetched_checked(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert stack.simulator is not None
    state = tmp_path / "state"
    stack.write_state(state)
    archive = tmp_path / "dora.zip"
    archive.write_bytes(training_zip(images=4))
    # Given an upload asking for two samples, whose training task is held until their tasks will be held too
    stack.simulator.faults.held.append(1)
    code, output = run(
        "--state-dir", str(state), "submit", str(archive), "--trigger-word", "zxq",
        "--sample-prompt", "a portrait of {trigger} in a garden", "--sample-prompt", "on a beach",
    )  # fmt: skip
    assert code == 0, output
    job_id = re.search(r"job id   (\S+)", output).group(1)  # type: ignore[union-attr]
    metadata = stack.client("s3").head_object(Bucket=stack.uploads_bucket, Key="uploads/dora.zip")["Metadata"]
    assert metadata["sample-prompts"] == "a portrait of {trigger} in a garden | on a beach"
    stack.wait_for(job_id, {"SUBMITTED", "TRAINING"})
    stack.simulator.faults.held.append(2)
    stack.simulator.release()
    stack.wait_for(job_id, {"COMPLETED"})
    rendering_rows(stack, job_id)
    # When the user asks for the job while its samples render
    code, output = run("--state-dir", str(state), "status", job_id)
    # Then each prompt shows as sent (the trigger word in it), its seed and state
    assert code == 0, output
    assert "samples  2 prompt(s): 2 rendering" in output
    shown = [line.split(maxsplit=3) for line in output.splitlines() if re.match(r"[12]\s+rendering\s", line)]
    assert [(n, seed.isdigit(), rest.split("  ")[0]) for n, _, seed, rest in shown] == [
        ("1", True, "a portrait of zxq in a garden"),
        ("2", True, "zxq, on a beach"),
    ]
    assert f"`loradrop fetch {job_id} -o FILE --samples --wait` downloads them" in output
    # And fetching them now says they still render, and saves nothing
    weights = tmp_path / "dora" / "dora.safetensors"  # its folder is made when something is saved
    code, _ = run("--state-dir", str(state), "fetch", job_id, "-o", str(weights), "--samples")
    assert code == 4
    assert "2 of 2 samples still rendering: try again in a minute, or add --wait" in capsys.readouterr().err
    assert not weights.parent.exists()
    # When the images are rendered, `fetch --samples --wait` saves them beside the weights, each checked
    stack.simulator.release()
    code, output = run(
        "--state-dir", str(state), "fetch", job_id, "-o", str(weights), "--card", "--samples", "--wait",
        "--timeout", "60",
    )  # fmt: skip
    assert code == 0, output
    job = stack.job(job_id)
    assert job is not None
    assert [sample["state"] for sample in job["samples"]] == ["done", "done"]
    for sample in job["samples"]:
        image = weights.parent / "samples" / f"{sample['index'] + 1}.png"
        assert hashlib.sha256(image.read_bytes()).hexdigest() == sample["image_sha256"]
        assert stack.simulator.expected_image(sample["prediction_id"])[1] == sample["image_sha256"]
        assert re.search(rf"\n{sample['index'] + 1}\s+{sample['prompt']}\s+{image}\n", output)
    assert "![a portrait of zxq in a garden](samples/1.png)" in (weights.parent / "dora.README.md").read_text()
    # And `status` shows where each image is stored
    code, output = run("--state-dir", str(state), "status", job_id)
    assert f"samples  2 of 2 rendered (settled {job['samples_settled_at']})" in output
    assert all(sample["image_uri"] in output for sample in job["samples"])
    assert "--samples --wait" not in output
    # And an image changed in S3 since its SHA-256 was recorded is refused, not saved
    bucket, image_key = job["samples"][1]["image_uri"].removeprefix("s3://").split("/", 1)
    stack.client("s3").put_object(Bucket=bucket, Key=image_key, Body=b"not the rendered image")
    again = tmp_path / "again" / "dora.safetensors"
    code, _ = run("--state-dir", str(state), "fetch", job_id, "-o", str(again), "--samples")
    assert code == 2
    assert f"checksum mismatch for {job['samples'][1]['image_uri']}: the download was discarded" in (
        capsys.readouterr().err
    )
    assert sorted(path.name for path in (again.parent / "samples").iterdir()) == ["1.png"]


def rendering_rows(stack: LocalStack, job_id: str) -> None:
    """Wait until both sample rows of the job are RENDERING (their tasks held at WaveSpeed)."""
    store = JobStore(stack.client("dynamodb"), stack.table_name)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = [store.get_sample(sample_key(job_id, index)) for index in range(2)]
        if all(row and row.status is SampleStatus.RENDERING for row in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"the samples of {job_id} did not start rendering: {rows}")
