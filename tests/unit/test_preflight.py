"""`loradrop submit`'s checks before uploading, and `--fix`: what a user reads, and the archive it uploads
instead (its entries, its captions' bytes, its images' pixels)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from loradrop.images import sniff
from loradrop_cli.cli import main
from loradrop_cli.preflight import clean
from loradrop_local.dataset import photo
from tests.unit.datasets import macos_zip, with_orientation

RED, WHITE = (255, 0, 0), (255, 255, 255)


def marked_jpeg(orientation: int) -> bytes:
    """An 800x600 white JPEG with a red block in its top-left corner, as stored, with a phone's EXIF orientation."""
    image = Image.new("RGB", (800, 600), WHITE)
    image.paste(RED, (0, 0, 200, 150))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95)
    return with_orientation(buffer.getvalue(), orientation)


def folder_of(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "ana"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def submit(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(["submit", *argv], out), out.getvalue()


def test_check_prints_what_the_job_would_say_and_uploads_nothing(tmp_path: Path) -> None:
    files = {f"{i}.jpg": photo(640, 640, i) for i in range(4)} | {"IMG_1.jpg": marked_jpeg(6)}
    files |= {f"{i}.txt": f"zxq, pose {i}".encode() for i in range(4)} | {"IMG_1.txt": "zxq, café".encode("latin-1")}
    code, output = submit(str(folder_of(tmp_path, files)), "--trigger-word", "zxq", "--check")
    assert code == 0  # nothing a strict stack would refuse
    lines = output.splitlines()
    assert lines[0] == "checked the dataset for trigger word 'zxq': 2 finding(s)"
    assert lines[1].startswith("  warning  1 image(s) stored turned or mirrored")
    assert lines[2].startswith("  warning  1 caption(s) not UTF-8")
    assert lines[2].endswith(": IMG_1.txt")
    assert "uploaded" not in output


def test_check_says_what_a_strict_stack_rejects_and_exits_3(tmp_path: Path) -> None:
    files = {f"{i}.jpg": photo(640, 640, i) for i in range(5)} | {f"{i}.txt": b"a woman" for i in range(5)}
    code, output = submit(str(folder_of(tmp_path, files)), "--check")
    assert code == 3
    assert output.startswith(
        "checked the dataset for trigger word 'p3r5on' (loradrop's default: pass --trigger-word if your stack's "
        "differs): 1 finding(s)\n  unfit    no caption mentions the trigger word 'p3r5on'"
    )
    assert "(DatasetPolicy=strict rejects the upload for this)" in output


def test_check_of_something_that_is_no_zip_says_every_stack_rejects_it(tmp_path: Path) -> None:
    (tmp_path / "notes.zip").write_bytes(b"not a zip at all")
    code, output = submit(str(tmp_path / "notes.zip"), "--check")
    assert code == 3
    assert "  rejected not a ZIP archive" in output


def test_fix_leaves_junk_out_turns_jpegs_upright_and_writes_captions_as_utf8(tmp_path: Path) -> None:
    files = {f"{i}.jpg": photo(640, 640, i) for i in range(4)} | {"IMG_1.jpg": marked_jpeg(6)}
    files |= {f"{i}.txt": f"zxq {i}".encode() for i in range(4)} | {"IMG_1.txt": "zxq au café".encode("latin-1")}
    archive = tmp_path / "ana.zip"
    archive.write_bytes(macos_zip(files))
    code, output = submit(str(archive), "--trigger-word", "zxq", "--fix", "--check")
    assert code == 0
    assert output.splitlines() == [
        "fixed: 3",
        "  fixed    12 junk entries left out",
        "  fixed    set/IMG_1.jpg: turned upright (EXIF orientation 6)",
        "  fixed    set/IMG_1.txt: re-encoded as UTF-8",
        "checked the dataset for trigger word 'zxq': no finding(s)",
    ]
    cleaned, _ = clean(archive.read_bytes())
    with zipfile.ZipFile(io.BytesIO(cleaned)) as fixed:
        assert sorted(fixed.namelist()) == sorted(f"set/{name}" for name in files)
        assert fixed.read("set/IMG_1.txt").decode("utf-8") == "zxq au café"
        assert fixed.read("set/0.jpg") == files["0.jpg"]  # what needed no fix is copied byte for byte
        upright = fixed.read("set/IMG_1.jpg")
    assert sniff(upright).orientation is None  # the tag is gone: viewers and trainers agree
    with Image.open(io.BytesIO(upright)) as image:
        # Orientation 6 is shown turned 90° clockwise: the stored top-left corner is now the top-right
        assert image.size == (600, 800)
        rgb = image.convert("RGB")
        assert _near(rgb.getpixel((600 - 20, 20)), RED)
        assert _near(rgb.getpixel((20, 20)), WHITE)


@pytest.mark.parametrize(("orientation", "red_at"), [(3, (780, 580)), (8, (20, 780))])
def test_fix_turns_each_orientation_the_way_a_viewer_shows_it(orientation: int, red_at: tuple[int, int]) -> None:
    archive = macos_zip({"a.jpg": marked_jpeg(orientation)})
    cleaned, fixed = clean(archive)
    assert fixed[1] == f"set/a.jpg: turned upright (EXIF orientation {orientation})"
    with zipfile.ZipFile(io.BytesIO(cleaned)) as result, Image.open(io.BytesIO(result.read("set/a.jpg"))) as image:
        assert _near(image.convert("RGB").getpixel(red_at), RED)


def _near(pixel: object, colour: tuple[int, int, int]) -> bool:
    assert isinstance(pixel, tuple)
    return all(abs(a - b) < 40 for a, b in zip(pixel, colour, strict=True))
