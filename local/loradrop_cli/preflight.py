"""`loradrop submit`'s look at a dataset before it is uploaded, and `--fix`.

The checks are SubmitTraining's own (`loradrop.archive`, `loradrop.dataset`), run over the archive about to be
uploaded through a reader over bytes: what they print here is what the job will say. `--fix` writes a clean
archive in its place: zip tools' junk left out, JPEGs turned upright by their EXIF orientation (pixels turned
and the tag removed, with Pillow), captions re-encoded as UTF-8.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loradrop.archive import CAPTION_EXTENSION, ArchiveLimits, ArchiveRejected, open_archive
from loradrop.captions import as_utf8
from loradrop.dataset import survey
from loradrop.hygiene import is_junk
from loradrop.images import sniff
from loradrop.models import TrainingParams
from loradrop.ranges import BytesReader
from loradrop_cli.job_client import CliError

if TYPE_CHECKING:
    from rich.console import Console

JPEG_EXTENSIONS = (".jpg", ".jpeg")
_ORIENTATION = 0x0112
_HEADER_BYTES = 256 * 1024  # as far as the survey looks for a JPEG's EXIF block


@dataclass(frozen=True)
class Verdict:
    warnings: list[str]
    unfit: list[str]  # what a stack with DatasetPolicy=strict rejects the upload for
    rejected: str | None = None  # why every stack rejects it (INVALID_UPLOAD)


def check(body: bytes, trigger_word: str | None) -> Verdict:
    """The findings SubmitTraining would record for this archive (its limits as the template's defaults)."""
    try:
        archive = open_archive(BytesReader(body), ArchiveLimits())
    except ArchiveRejected as err:
        return Verdict([], [], rejected=str(err))
    dataset = survey(archive, trigger_word=trigger_word, budget_seconds=600)
    return Verdict(archive.report.warnings + dataset.warnings(), dataset.fatal())


def show(verdict: Verdict, trigger_word: str, default: bool, console: Console) -> None:
    whose = " (loradrop's default: pass --trigger-word if your stack's differs)" if default else ""
    found = len(verdict.warnings) + len(verdict.unfit) + bool(verdict.rejected)
    console.print(f"checked the dataset for trigger word {trigger_word!r}{whose}: {found or 'no'} finding(s)")
    if verdict.rejected:
        console.print(f"  rejected {verdict.rejected} (every stack rejects the upload for this)")
    for finding in verdict.unfit:
        console.print(f"  unfit    {finding} (DatasetPolicy=strict rejects the upload for this)")
    for finding in verdict.warnings:
        console.print(f"  warning  {finding}")


def trigger_word_for(given: str | None) -> tuple[str, bool]:
    """The trigger word the checks look for, and whether it is only loradrop's default."""
    if given is not None:
        return given, False
    return str(TrainingParams.model_fields["trigger_word"].default), True


def clean(body: bytes) -> tuple[bytes, list[str]]:
    """A clean copy of the archive and what was changed: junk left out, JPEGs turned upright, captions in
    UTF-8. Everything else is copied as it was."""
    fixed: list[str] = []
    junk = 0
    buffer = io.BytesIO()
    try:
        source = zipfile.ZipFile(io.BytesIO(body))
    except zipfile.BadZipFile as err:
        raise CliError(f"--fix cannot read the archive ({err}): upload a .zip made with a zip tool") from None
    with source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.is_dir():
                continue
            if is_junk(info.filename):
                junk += 1
                continue
            data, change = _fixed(info.filename, source.read(info))
            if change:
                fixed.append(f"{info.filename}: {change}")
            target.writestr(zipfile.ZipInfo(info.filename, date_time=info.date_time), data, zipfile.ZIP_DEFLATED)
    if junk:
        fixed.insert(0, f"{junk} junk entries left out")
    return buffer.getvalue(), fixed


def _fixed(name: str, data: bytes) -> tuple[bytes, str | None]:
    extension = posixpath.splitext(name.lower())[1]
    if extension == CAPTION_EXTENSION:
        utf8 = as_utf8(data)
        return (data, None) if utf8 is None else (utf8, "re-encoded as UTF-8")
    if extension in JPEG_EXTENSIONS:
        orientation = sniff(data[:_HEADER_BYTES]).orientation
        if orientation is not None and orientation != 1:
            return upright(data), f"turned upright (EXIF orientation {orientation})"
    return data, None


def upright(jpeg: bytes) -> bytes:
    """The JPEG with its pixels turned as its EXIF orientation says and the tag removed, re-encoded at high
    quality with its other EXIF fields and colour profile kept."""
    try:
        from PIL import Image, ImageOps
    except ImportError:  # a development dependency, never the Lambda's
        raise CliError("--fix needs Pillow to turn images upright: pip install pillow") from None
    with Image.open(io.BytesIO(jpeg)) as image:
        exif = image.getexif()
        turned = ImageOps.exif_transpose(image)
        exif.pop(_ORIENTATION, None)
        out = io.BytesIO()
        options = {"icc_profile": image.info["icc_profile"]} if "icc_profile" in image.info else {}
        turned.save(out, "JPEG", quality=95, exif=exif.tobytes(), **options)
    return out.getvalue()
