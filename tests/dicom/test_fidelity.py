"""Rendering fidelity: every test image, rendered by us and by DCMTK's dcmj2pnm with the same
window, must differ by more than 1 grey level on at most 0.5% of the pixels.

DCMTK (Debian package dcmtk) is the reference. The free DCMTK cannot read JPEG 2000, so those
files are first decompressed by GDCM's ``gdcmconv --raw`` (Debian libgdcm-tools), as JPEG-LS
ones are by ``dcmdjpls``; our decoding must then agree with theirs, and our rendering with
dcmj2pnm's. HTJ2K, which neither reads, is skipped with that reason, as is an environment
without the tools (``.ci/run`` installs them and sets PACS_REQUIRE_DCMTK=1, so that a missing
tool fails instead).
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from pacs_app.dicom import pixels
from tests.dcmtk import required, tool
from tests.dicom_factory import TESTDATA

DCMJ2PNM = tool("dcmj2pnm")
JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
LOSSY_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
JPEG2000 = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
WORST: dict[str, float] = {}


def _images() -> list[Path]:
    if not TESTDATA.exists():
        return []
    out = []
    for path in sorted(TESTDATA.rglob("*")):
        if not path.is_file() or path.parent.name == "malformed":
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            except Exception:
                continue
        if (
            "Rows" in ds
            and ds.get("SOPClassUID", "")
            and "PixelData" in pydicom.dcmread(path, force=True, specific_tags=["PixelData"])
        ):
            out.append(path)
    return out


IMAGES = _images()


@pytest.fixture(scope="module", autouse=True)
def _require_dcmtk():
    required("dcmj2pnm", "gdcmconv", install="dcmtk libgdcm-tools")
    yield
    # The file list and the worst difference of each, for the record.
    report = Path(__file__).resolve().parents[2] / "test-artifacts" / "fidelity.txt"
    report.parent.mkdir(exist_ok=True)
    lines = [
        f"{share:8.4%}  {name}" for name, share in sorted(WORST.items(), key=lambda kv: -kv[1])
    ]
    report.write_text(
        "share of pixels off by more than 1 grey level, per file\n" + "\n".join(lines) + "\n"
    )


def _dcmtk(path: Path, out: Path, frame: int, window: pixels.Window | None) -> np.ndarray:
    args = [DCMJ2PNM, "+on", "+F", str(frame + 1)]
    if window is not None:
        args += ["+Ww", repr(window.center), repr(window.width)]
    else:
        args += ["+Wm"]
    result = subprocess.run([*args, str(path), str(out)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"dcmj2pnm cannot render it: {result.stderr.strip()[:200]}")
    return np.asarray(Image.open(out))


@pytest.mark.skipif(not IMAGES, reason=f"shared test data not found at {TESTDATA}")
@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.relative_to(TESTDATA).as_posix())
def test_rendering_matches_dcmtk(path, tmp_path):
    ds = pixels.read_dataset(path)
    syntax = str(getattr(ds.file_meta, "TransferSyntaxUID", ""))
    reference = path
    if syntax in JPEG_LS | LOSSY_JPEG | JPEG2000:
        # dcmj2pnm reads neither JPEG-LS nor JPEG 2000, and lossy JPEG decoders may differ by
        # one stored value (the IDCT's accuracy): a reference tool decompresses first; our
        # decoding must agree with it, and our rendering of its pixels must match dcmj2pnm's.
        reference = tmp_path / "reference.dcm"
        if syntax in JPEG_LS:
            tools = [["dcmdjpls"], ["gdcmconv", "--raw"]]
        elif syntax in LOSSY_JPEG:
            tools = [["dcmdjpeg"]]
        else:
            tools = [["gdcmconv", "--raw"]]
        for command in tools:
            result = subprocess.run(
                [shutil.which(command[0]) or command[0], *command[1:], str(path), str(reference)],
                capture_output=True,
                text=True,
            )
            if result.returncode == 0:
                break
        else:
            reason = (result.stderr or result.stdout).strip()[:200]
            pytest.skip(f"{command[0]} cannot decompress it: {reason}")
        decoded = pixels.read_dataset(reference)
        # JPEG-LS decoding is exact; lossy JPEG decoders may differ by one stored value (IDCT),
        # and colour ones by a few more through chroma upsampling and YCbCr->RGB rounding.
        tolerance = (
            0 if syntax in JPEG_LS or syntax.endswith(".90") else 3 if pixels.is_color(ds) else 1
        )
        for frame in range(pixels.frame_count(ds)):
            ours = pixels.decode_frame(ds, frame).astype(np.int64)
            theirs = pixels.decode_frame(decoded, frame).astype(np.int64)
            assert np.abs(ours - theirs).max() <= tolerance, f"decoders differ, frame {frame}"
        ds = decoded
    frames = pixels.frame_count(ds)
    for frame in sorted({0, frames - 1}):
        window = (
            None
            if pixels.is_color(ds)
            else (
                pixels.header_window(ds, frame)
                or pixels.min_max_window(
                    pixels.modality_values(ds, pixels.decode_frame(ds, frame), frame)
                )
            )
        )
        ours = pixels.render(ds, frame, window)
        theirs = _dcmtk(reference, tmp_path / f"f{frame}.png", frame, window)
        assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
        off = np.abs(ours.astype(int) - theirs.astype(int)) > 1
        share = off.mean()
        WORST[path.name] = max(WORST.get(path.name, 0.0), float(share))
        assert share <= 0.005, f"{share:.2%} of pixels differ by more than 1 grey level"
