"""AI pipeline benchmark. Prints figures; asserts nothing (not a test).

    .venv/bin/python benchmarks/ai.py            # CPU here
    .venv/bin/python benchmarks/ai.py --gpu      # also a learned model on CUDA (lent GPU)

Time per study through the whole pipeline (select, load, plugins, draft) with the default
plugins, for a 512x512x200 CT volume and a 2000x2500 chest radiograph, with the analysis
pinned to one CPU core (torch and BLAS threads = 1, as the target is stated). With ``--gpu``
(or whenever CUDA is available) it also times a learned-model plugin (a MONAI UNet bundle with
random weights: a timing, never a finding) on the CPU and on the GPU.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")
# the analysis is claimed as soon as the study is stored: what is timed is the analysis
os.environ.setdefault("AI_SETTLE_SECONDS", "0")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import pydicom.examples  # noqa: E402
from common import WORK, fresh_database, line, phantom_slice, setup_accounts  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from pacs_app.core import db  # noqa: E402
from pacs_app.models import AIJob, Study  # noqa: E402
from pacs_app.services import ai  # noqa: E402
from pacs_app.services.ingest import StagedFile, StudyForm, ingest  # noqa: E402
from pacs_app.storage import LocalStorage  # noqa: E402


def write_ct(folder: Path, slices: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.examples.ct
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.25
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    rng = np.random.default_rng(3)
    paths = []
    for i in range(slices):
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-179.2, -179.2, -i * 1.25]
        ds.SliceLocation = -i * 1.25
        ds.PixelData = phantom_slice(rng, i).tobytes()
        path = folder / f"ct_{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_radiograph(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.examples.ct.copy()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray, for presentation
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.Modality, ds.BodyPartExamined = "DX", "CHEST"
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = 2500, 2000
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope = 0, 1
    ds.ImagerPixelSpacing = ds.PixelSpacing = [0.17, 0.17]
    for tag in ("ImagePositionPatient", "ImageOrientationPatient", "SliceLocation"):
        if tag in ds:
            delattr(ds, tag)
    yy, xx = np.mgrid[0:2500, 0:2000]
    img = np.full((2500, 2000), 300.0)
    body = ((xx - 1000) / 850) ** 2 + ((yy - 1300) / 1150) ** 2 < 1
    img[body] = 2600
    for cx in (640, 1360):
        img[((xx - cx) / 300) ** 2 + ((yy - 1150) / 650) ** 2 < 1] = 1100
    img += np.random.default_rng(5).normal(0, 40, img.shape)
    ds.PixelData = np.clip(img, 0, 4095).astype(np.uint16).tobytes()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = folder / "dx.dcm"
    ds.save_as(path, enforce_file_format=True)
    return [path]


def time_study(url: str, storage: LocalStorage, actor, paths: list[Path], **form) -> AIJob:
    from pacs_app.ai.worker import process

    with Session(db.get_engine(url), expire_on_commit=False) as s:
        result = ingest(
            session=s,
            actor=actor,
            files=[StagedFile(name=p.name, path=p) for p in paths],
            form=StudyForm(**form),
            storage=storage,
        )
        study = s.exec(select(Study).where(Study.study_id == result.studies[0].study_id)).one()
        job = ai.claim_next(s, worker="bench")
        process(s, job, storage, worker="bench", url=url)
        s.expire_all()
        return s.exec(select(AIJob).where(AIJob.study_pk == study.id)).one()


def report(label: str, job: AIJob) -> None:
    t = job.timings or {}
    line(label, f"{t.get('total', 0):6.2f} s total  ({job.status.value}, {job.device})")
    steps = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "total")
    line("  steps (s)", steps)
    ran = [p["name"] for p in job.plugins or [] if p.get("ran")]
    line("  plugins", ", ".join(ran))


def learned_timing(device: str) -> None:
    import torch
    from monai.networks.nets import UNet

    from pacs_app.ai.base import SeriesVolume, StudyContext
    from pacs_app.ai.models import LearnedModelPlugin, ModelSpec, write_bundle

    net = UNet(
        spatial_dims=3,
        in_channels=1,
        out_channels=2,
        channels=(16, 32, 64, 128),
        strides=(2, 2, 2),
        num_res_units=2,
    )
    folder = WORK / "bundle"
    digest = write_bundle(
        folder,
        network="UNet",
        args={
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": 2,
            "channels": [16, 32, 64, 128],
            "strides": [2, 2, 2],
            "num_res_units": 2,
        },
        state_dict=net.state_dict(),
        metadata={"name": "bench-unet", "version": "0"},
    )
    spec = ModelSpec(
        name="bench-unet",
        version="0",
        kind="monai_bundle",
        modalities=("CT",),
        body_parts=(),
        bundle_path=str(folder),
        sha256=digest,
        licence="none",
        intended_use="benchmark only",
        validated=False,
        task="segmentation",
        labels=("background", "object"),
        spatial_size=(96, 96, 96),
        intensity_range=(-1000.0, 1000.0),
    )
    vol = np.random.default_rng(1).normal(0, 300, (200, 512, 512)).astype(np.float32)
    volume = SeriesVolume(
        series_uid="1",
        modality="CT",
        body_part="",
        description="",
        pixels=vol,
        spacing=(1.25, 0.7, 0.7),
        positions=[None] * 200,
        orientations=[None] * 200,
        instance_numbers=list(range(200)),
        frame_sources=[("x", 0)] * 200,
        headers=[{}],
        photometric="MONOCHROME2",
        slice_thickness=1.25,
        value_range=(-1024, 3071),
        transfer_syntaxes=[],
    )
    ctx = StudyContext(
        study_id="BENCH",
        modality="CT",
        body_part="",
        description="",
        series=[volume],
        device=device,
    )
    plugin = LearnedModelPlugin(spec)
    torch.set_num_threads(1 if device == "cpu" else torch.get_num_threads())
    plugin.run(ctx)  # warm-up: load, cache
    start = time.perf_counter()
    plugin.run(ctx)
    line(
        f"learned UNet 3D (96^3 sliding window) on 512x512x200, {device}",
        f"{time.perf_counter() - start:6.2f} s",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu", action="store_true", help="also time a learned model on CUDA")
    parser.add_argument("--slices", type=int, default=200)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"AI pipeline, default plugins, one CPU core (torch {torch.__version__})")
    url, drop = fresh_database("sqlite", None)
    try:
        actor = setup_accounts(url)
        storage = LocalStorage(WORK / "store")
        ct = write_ct(WORK / "ct", args.slices)
        report(
            f"CT volume 512x512x{args.slices}",
            time_study(url, storage, actor, ct, modality="CT", body_part="CHEST"),
        )
        dx = write_radiograph(WORK / "dx")
        report(
            "chest radiograph 2000x2500",
            time_study(url, storage, actor, dx, modality="DX", body_part="CHEST"),
        )
        learned_timing("cpu")
        if args.gpu or torch.cuda.is_available():
            if torch.cuda.is_available():
                print(f"GPU: {torch.cuda.get_device_name(0)}")
                learned_timing("cuda")
            else:
                print("  (no CUDA device here)")
    finally:
        drop()


if __name__ == "__main__":
    main()
