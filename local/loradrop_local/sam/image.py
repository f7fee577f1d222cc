"""A stand-in for Lambda's Python 3.13 arm64 base image, built from packages alone, for `sam local`.

SAM pulls `public.ecr.aws/lambda/python:3.13-rapid-arm64` from AWS's registry; a machine that reaches no
registry (this one, and its CI) builds this instead: Debian trixie's Python 3.13 for arm64 (debootstrap,
run under qemu's arm64 emulation), AWS's runtime interface client (`awslambdaric`, its aarch64 wheel from
PyPI) in /var/runtime, and the `bootstrap` Lambda's Python runtime starts. SAM adds its own runtime interface
emulator (`aws-lambda-rie`) when it runs a container. `docker import` would record this machine's
architecture, so the image is loaded from a hand-made archive whose config says arm64.

Building needs root (debootstrap, binfmt), Docker, `debootstrap` and `qemu-user-static`; it takes a few
minutes, and the rootfs is cached (~/.cache/loradrop) for the next build.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

IMAGE = "loradrop/lambda-python:3.13-arm64"
SUITE = "trixie"  # its python3 is 3.13, as Lambda's python3.13 runtime
MIRROR = "http://deb.debian.org/debian"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "loradrop"
BOOTSTRAP = """#!/bin/sh
# Lambda's Python runtime, as AWS's base image starts it: the runtime interface client runs the handler.
export PYTHONPATH=/var/runtime:/var/task:/opt/python${PYTHONPATH:+:$PYTHONPATH}
exec /usr/bin/python3 -m awslambdaric "$_HANDLER"
"""
ENVIRONMENT = [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "TZ=:/etc/localtime",
    "LAMBDA_TASK_ROOT=/var/task",
    "LAMBDA_RUNTIME_DIR=/var/runtime",
]
TRIMMED = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "var/cache/apt", "var/lib/apt/lists")


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)  # noqa: S607


def docker_ready() -> str | None:
    """None when a Docker engine answers; else why not, in a line."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    try:
        answer = docker("info", "--format", "{{.ServerVersion}}", check=False)
    except OSError as err:
        return f"docker could not run: {err}"
    return None if answer.returncode == 0 else f"no Docker engine answers: {answer.stderr.strip()[:200]}"


def have_image() -> bool:
    return docker("image", "inspect", IMAGE, check=False).returncode == 0


def bridge_gateway() -> str:
    """The address the host has on Docker's default bridge: what SAM's containers reach the local stack at."""
    answer = docker("network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}", check=False)
    return answer.stdout.strip() or "172.17.0.1"


def rootfs(python: str) -> Path:
    """The arm64 root file system with Python 3.13 and the runtime interface client (cached)."""
    root = CACHE / f"lambda-rootfs-{SUITE}-arm64"
    if (root / "var" / "runtime" / "bootstrap").exists():
        return root
    if os.geteuid() != 0:
        raise SystemExit("building the arm64 image needs root (debootstrap); run it as root, e.g. in CI")
    enable_arm64_emulation()
    staging = root.with_suffix(".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    print(f"debootstrap {SUITE} arm64 into {staging} (a few minutes under emulation) ...", flush=True)
    debootstrap = ["debootstrap", "--arch=arm64", "--variant=minbase", "--include=python3,ca-certificates"]
    subprocess.run([*debootstrap, SUITE, str(staging), MIRROR], check=True, stdout=subprocess.DEVNULL)
    runtime = staging / "var" / "runtime"
    wheel = ["--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", "3.13"]
    pip = [python, "-m", "pip", "install", "--quiet", "--target", str(runtime), *wheel, "--only-binary=:all:"]
    subprocess.run([*pip, "awslambdaric"], check=True)
    (runtime / "bootstrap").write_text(BOOTSTRAP)
    (runtime / "bootstrap").chmod(0o755)
    for folder in ("var/task", "opt"):
        (staging / folder).mkdir(parents=True, exist_ok=True)
    for trimmed in TRIMMED:
        shutil.rmtree(staging / trimmed, ignore_errors=True)
    staging.rename(root)
    return root


def enable_arm64_emulation() -> None:
    """binfmt_misc mounted and qemu's aarch64 handler on, so arm64 programs run on this machine."""
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    if not (binfmt / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)], check=True)  # noqa: S607
    if not (binfmt / "qemu-aarch64").exists():
        subprocess.run(["update-binfmts", "--enable", "qemu-aarch64"], check=True)  # noqa: S607


def load(root: Path) -> None:
    """Load the root file system as an arm64 image: one layer, a config that says arm64, a manifest."""
    with tempfile.TemporaryDirectory() as scratch:
        layer = Path(scratch) / "layer.tar"
        with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(os.listdir(root)):
                tar.add(root / name, arcname=name)
        diff_id = hashlib.sha256(layer.read_bytes()).hexdigest()
        config = json.dumps(
            {
                "architecture": "arm64",
                "variant": "v8",
                "os": "linux",
                "config": {"Env": ENVIRONMENT, "WorkingDir": "/var/task", "Entrypoint": ["/var/runtime/bootstrap"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
                "history": [{"created_by": f"loradrop: debootstrap {SUITE} arm64, awslambdaric, bootstrap"}],
            }
        ).encode()
        config_name = f"{hashlib.sha256(config).hexdigest()}.json"
        manifest = json.dumps([{"Config": config_name, "RepoTags": [IMAGE], "Layers": [f"{diff_id}/layer.tar"]}])
        archive = Path(scratch) / "image.tar"
        with tarfile.open(archive, "w") as out:
            for name, data in ((config_name, config), ("manifest.json", manifest.encode())):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))
            out.add(layer, arcname=f"{diff_id}/layer.tar")
        docker("load", "-i", str(archive))


def ensure_image(python: str = sys.executable) -> None:
    if not have_image():
        load(rootfs(python))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loradrop_local.sam.image", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rebuild", action="store_true", help="build the root file system again")
    args = parser.parse_args(argv)
    problem = docker_ready()
    if problem:
        print(f"no image built: {problem}", file=sys.stderr)
        return 2
    if args.rebuild:
        shutil.rmtree(CACHE / f"lambda-rootfs-{SUITE}-arm64", ignore_errors=True)
        docker("image", "rm", "-f", IMAGE, check=False)
    ensure_image()
    print(f"{IMAGE}: {docker('image', 'inspect', IMAGE, '--format', '{{.Architecture}}').stdout.strip()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
