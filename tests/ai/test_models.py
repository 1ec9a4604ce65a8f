"""Learned-model plugins: the real bundle reading, checking, loading and inference path.

Tiny randomly initialised MONAI networks stand in for trained models; their output means
nothing, which is exactly why it must come back marked unvalidated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from monai.networks.nets import DenseNet121, UNet  # noqa: E402

from pacs_app.ai.base import SeriesVolume, Severity, StudyContext  # noqa: E402
from pacs_app.ai.models import (  # noqa: E402
    ALLOWED_NETWORKS,
    LearnedModelPlugin,
    ModelError,
    ModelSpec,
    WeightsNotInstalled,
    check_weights,
    load_network,
    model_state,
    read_bundle,
    sha256_of,
    write_bundle,
)
from pacs_app.ai.preprocess import to_model_input  # noqa: E402
from pacs_app.core.errors import InvalidInput  # noqa: E402

REPO = Path(__file__).resolve().parents[2]

UNET_2D = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 2,
    "channels": (4, 8),
    "strides": (2,),
    "num_res_units": 0,
}
UNET_3D = {**UNET_2D, "spatial_dims": 3}
DENSENET_2D = {
    "spatial_dims": 2,
    "in_channels": 1,
    "out_channels": 3,
    "init_features": 4,
    "growth_rate": 4,
    "block_config": (1, 1),
}


def make_bundle(
    folder: Path, args: dict, *, network: str = "UNet", state_dict=None, cls=UNet
) -> str:
    torch.manual_seed(0)
    if state_dict is None:
        extra = {"pretrained": False} if cls is DenseNet121 else {}
        state_dict = cls(**args, **extra).state_dict()
    return write_bundle(
        folder,
        network=network,
        args=args,
        state_dict=state_dict,
        metadata={"name": folder.name, "version": "0.1", "description": "test bundle"},
    )


def make_spec(folder: Path, sha: str, **overrides) -> ModelSpec:
    values = {
        "name": "test-lung-seg",
        "version": "0.1",
        "kind": "monai_bundle",
        "modalities": ("CR", "DX"),
        "body_parts": (),
        "bundle_path": str(folder),
        "sha256": sha,
        "licence": "Apache-2.0",
        "intended_use": "Testing only.",
        "validated": False,
        "task": "segmentation",
        "labels": ("background", "lung"),
        "spatial_size": (32, 32),
        "intensity_range": None,
    }
    values.update(overrides)
    return ModelSpec(**values)


def make_volume(shape: tuple[int, int, int], modality: str, spacing=(None, 0.5, 0.5)):
    rng = np.random.default_rng(1)
    frames = shape[0]
    return SeriesVolume(
        series_uid="1.2.3.4",
        modality=modality,
        body_part="CHEST",
        description="synthetic",
        pixels=rng.normal(100.0, 30.0, size=shape).astype(np.float32),
        spacing=spacing,
        positions=[None] * frames,
        orientations=[None] * frames,
        instance_numbers=list(range(1, frames + 1)),
        frame_sources=[(f"1.2.3.4.{i}", 0) for i in range(frames)],
        headers=[{}],
        photometric="MONOCHROME2",
        slice_thickness=None,
        value_range=(-1024.0, 3071.0),
        transfer_syntaxes=["1.2.840.10008.1.2.1"],
    )


def context_of(volume: SeriesVolume) -> StudyContext:
    return StudyContext(
        study_id="s1",
        modality=volume.modality,
        body_part="CHEST",
        description="",
        series=[volume],
    )


def write_network_def(folder: Path, network_def: dict) -> None:
    (folder / "configs" / "inference.json").write_text(json.dumps({"network_def": network_def}))


@pytest.fixture
def bundle_2d(tmp_path) -> tuple[Path, str]:
    folder = tmp_path / "unet2d"
    return folder, make_bundle(folder, UNET_2D)


# --- the module stays light -----------------------------------------------------------------


def test_importing_models_does_not_import_torch():
    code = "import pacs_app.ai.models, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)


def test_model_state_does_not_import_torch(bundle_2d):
    folder, sha = bundle_2d
    code = (
        "import sys\n"
        "from pacs_app.ai.models import ModelSpec, model_state\n"
        f"spec = ModelSpec(name='m', version='1', kind='monai_bundle', modalities=('CR',),\n"
        f"    body_parts=(), bundle_path={str(folder)!r}, sha256={sha!r}, licence='',\n"
        "    intended_use='', validated=False, task='segmentation', labels=('bg', 'x'),\n"
        "    spatial_size=(32, 32), intensity_range=None)\n"
        "print(model_state(spec))\n"
        "assert 'torch' not in sys.modules and 'monai' not in sys.modules\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True
    )
    assert out.stdout.strip() == "ready"


def test_allow_list_has_the_expected_networks():
    assert {"UNet", "BasicUNet", "DenseNet121", "SegResNet"} <= set(ALLOWED_NETWORKS)
    assert ALLOWED_NETWORKS["UNet"].constructor() is UNet


# --- the real path ---------------------------------------------------------------------------


def test_2d_segmentation_runs_and_is_marked_unvalidated(bundle_2d):
    folder, sha = bundle_2d
    spec = make_spec(folder, sha)
    assert model_state(spec) == "ready"
    assert check_weights(spec) == folder / "models" / "model.pt"
    assert ModelError.__mro__[1] is InvalidInput

    volume = make_volume((1, 64, 64), "DX")
    plugin = LearnedModelPlugin(spec)
    assert (plugin.name, plugin.version, plugin.kind) == ("test-lung-seg", "0.1", "learned")
    assert plugin.applies(context_of(volume))
    result = plugin.run(context_of(volume))

    assert result.warnings == []
    assert len(result.findings) == 1  # the background channel is not reported
    f = result.findings[0]
    assert f.code == "model.test_lung_seg.lung"
    assert f.severity is Severity.INFO
    assert f.evidence["unvalidated"] is True
    assert f.report_text == ""
    assert f.unit == "cm²"  # one image with pixel spacing: an area
    assert 0.0 <= f.evidence["fraction"] <= 1.0
    assert f.value == pytest.approx(f.evidence["fraction"] * 64 * 64 * 0.25 / 100)
    for part in ("test-lung-seg", "0.1", "unet2d", "device cpu", "UNet"):
        assert part in f.method
    assert "Testing only" in f.limitations
    assert "validated: no — research use only, not for clinical decisions" in f.limitations
    assert f.series_uid == "1.2.3.4"


def test_network_output_shape_is_that_of_the_model_input(bundle_2d):
    folder, sha = bundle_2d
    network = load_network(make_spec(folder, sha), "cpu")
    assert not network.training
    x = to_model_input(make_volume((1, 64, 64), "DX"), (32, 32), None)
    assert tuple(x.shape) == (1, 32, 32)
    with torch.no_grad():
        assert tuple(network(x[None]).shape) == (1, 2, 32, 32)
    assert load_network(make_spec(folder, sha), "cpu") is network  # cached


def test_validated_model_findings_reach_the_draft(bundle_2d):
    folder, sha = bundle_2d
    spec = make_spec(folder, sha, validated=True)
    result = LearnedModelPlugin(spec).run(context_of(make_volume((1, 64, 64), "CR")))
    f = result.findings[0]
    assert f.evidence["unvalidated"] is False
    assert f.report_text.startswith("lung measures")
    assert "validated: no" not in f.limitations


@pytest.mark.parametrize(
    ("spatial_size", "how"),
    [((16, 16, 16), "sliding window"), ((16, 32, 32), "volume resized")],
)
def test_3d_segmentation_gives_a_volume_in_ml(tmp_path, spatial_size, how):
    folder = tmp_path / "unet3d"
    sha = make_bundle(folder, UNET_3D)
    spec = make_spec(
        folder,
        sha,
        modalities=("CT",),
        spatial_size=spatial_size,
        intensity_range=(-1000.0, 1000.0),
    )
    volume = make_volume((16, 32, 32), "CT", spacing=(2.0, 0.5, 0.5))
    result = LearnedModelPlugin(spec).run(context_of(volume))

    assert result.warnings == []
    (f,) = result.findings
    assert f.unit == "mL"
    assert f.value == pytest.approx(f.evidence["fraction"] * 16 * 32 * 32 * 0.5 / 1000)
    assert how in f.method
    assert "intensities -1000..1000 mapped to 0..1" in f.method
    assert f.evidence["unvalidated"] is True and f.report_text == ""


def test_2d_classification_gives_softmax_probabilities(tmp_path):
    folder = tmp_path / "densenet"
    sha = make_bundle(folder, DENSENET_2D, network="DenseNet121", cls=DenseNet121)
    spec = make_spec(
        folder, sha, task="classification", labels=("normal", "effusion", "pneumothorax")
    )
    result = LearnedModelPlugin(spec).run(context_of(make_volume((1, 64, 64), "DX")))

    assert result.warnings == []
    assert [f.code.rsplit(".", 1)[1] for f in result.findings] == [
        "normal",
        "effusion",
        "pneumothorax",
    ]
    assert sum(f.value for f in result.findings) == pytest.approx(1.0, abs=1e-5)
    for f in result.findings:
        assert "softmax" in f.method and f.unit == "probability"
        assert f.severity is Severity.INFO and f.evidence["unvalidated"] is True
        assert f.evidence["key_image"] == {"sop_instance_uid": "1.2.3.4.0", "frame": 0}


def test_plugin_does_not_apply_to_other_modalities(bundle_2d):
    folder, sha = bundle_2d
    plugin = LearnedModelPlugin(make_spec(folder, sha, body_parts=("KNEE",)))
    assert not plugin.applies(context_of(make_volume((1, 64, 64), "MR")))
    assert not plugin.applies(context_of(make_volume((1, 64, 64), "DX")))  # CHEST, not KNEE


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["$__import__('os').system('id')", "@other_network", "%configs/other.json#net", "a__b"],
)
def test_config_expressions_are_refused(bundle_2d, value):
    folder, _ = bundle_2d
    write_network_def(folder, {"_target_": "UNet", **UNET_2D, "channels": value})
    with pytest.raises(ModelError, match="config expressions are not evaluated"):
        read_bundle(folder)


def test_an_expression_as_target_is_refused(bundle_2d):
    folder, _ = bundle_2d
    write_network_def(folder, {"_target_": "$import os", **UNET_2D})
    with pytest.raises(ModelError, match="not evaluated"):
        read_bundle(folder)


@pytest.mark.parametrize("target", ["torch.nn.Module", "os.system", "monai.networks.nets.ViT"])
def test_targets_outside_the_allow_list_are_refused(bundle_2d, target):
    folder, sha = bundle_2d
    write_network_def(folder, {"_target_": target, **UNET_2D})
    with pytest.raises(ModelError, match="is not allowed"):
        read_bundle(folder)
    assert model_state(make_spec(folder, sha)).startswith("invalid bundle: network _target_")


def test_the_full_monai_name_is_accepted(bundle_2d):
    folder, _ = bundle_2d
    write_network_def(folder, {"_target_": "monai.networks.nets.UNet", **UNET_2D})
    assert read_bundle(folder).network == "UNet"


def test_unknown_arguments_are_refused(tmp_path):
    folder = tmp_path / "densenet"
    make_bundle(folder, DENSENET_2D, network="DenseNet121", cls=DenseNet121)
    # pretrained=True would download weights: not an argument a bundle may set
    write_network_def(folder, {"_target_": "DenseNet121", **DENSENET_2D, "pretrained": True})
    with pytest.raises(ModelError, match="unknown argument 'pretrained'"):
        read_bundle(folder)


@pytest.mark.parametrize(
    ("key", "value"),
    [("spatial_dims", 2.5), ("in_channels", True), ("channels", [4, "8"]), ("act", "os")],
)
def test_wrong_argument_types_are_refused(bundle_2d, key, value):
    folder, _ = bundle_2d
    write_network_def(folder, {"_target_": "UNet", **UNET_2D, key: value})
    with pytest.raises(ModelError, match=f"argument '{key}'"):
        read_bundle(folder)


def test_write_bundle_refuses_what_read_bundle_refuses(tmp_path):
    with pytest.raises(ModelError, match="is not allowed"):
        write_bundle(tmp_path / "b", network="os.system", args={}, state_dict={}, metadata={})
    assert not (tmp_path / "b").exists()


def test_a_weights_file_with_another_sha256_is_refused(bundle_2d):
    folder, _ = bundle_2d
    spec = make_spec(folder, "0" * 64)
    assert model_state(spec) == "sha256 mismatch"
    with pytest.raises(ModelError, match="weights file does not match its sha256"):
        check_weights(spec)
    with pytest.raises(ModelError, match="weights file does not match its sha256"):
        load_network(spec, "cpu")
    result = LearnedModelPlugin(spec).run(context_of(make_volume((1, 64, 64), "DX")))
    assert result.findings == []
    assert "does not match its sha256" in result.warnings[0]


def test_weights_for_another_network_shape_fail_the_strict_load(tmp_path):
    folder = tmp_path / "unet2d"
    other = UNet(**{**UNET_2D, "channels": (8, 16)}).state_dict()
    sha = make_bundle(folder, UNET_2D, state_dict=other)
    spec = make_spec(folder, sha)
    with pytest.raises(ModelError, match="weights do not fit the UNet network") as info:
        load_network(spec, "cpu")
    assert "size mismatch" in info.value.message


def test_a_checkpoint_dict_with_a_model_key_is_accepted(tmp_path):
    folder = tmp_path / "unet2d"
    torch.manual_seed(0)
    net = UNet(**UNET_2D)
    sha = make_bundle(folder, UNET_2D, state_dict={"model": net.state_dict(), "epoch": 3})
    loaded = load_network(make_spec(folder, sha), "cpu")
    assert torch.equal(
        loaded.state_dict()["model.0.conv.weight"], net.state_dict()["model.0.conv.weight"]
    )


def test_missing_weights(bundle_2d):
    folder, sha = bundle_2d
    (folder / "models" / "model.pt").unlink()
    spec = make_spec(folder, sha)
    assert model_state(spec) == "weights not installed"
    with pytest.raises(WeightsNotInstalled):
        check_weights(spec)
    result = LearnedModelPlugin(spec).run(context_of(make_volume((1, 64, 64), "DX")))
    assert result.findings == [] and "weights not installed" in result.warnings[0]


def test_model_state_never_raises(tmp_path):
    spec = make_spec(tmp_path / "nowhere", "a" * 64)
    assert model_state(spec) == "weights not installed"
    assert model_state(make_spec(tmp_path, "A" * 64)).startswith("invalid bundle: sha256")
    assert model_state(make_spec(tmp_path, "a" * 64, task="detection")).startswith(
        "invalid bundle: task"
    )


class _LeavesAMark:
    """Unpickling this calls ``_leave_mark``: what a malicious weights file would do."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (_leave_mark, (self.path,))


def _leave_mark(path: str) -> None:
    Path(path).write_text("code ran while loading the weights")


def test_weights_are_loaded_with_weights_only(bundle_2d, tmp_path):
    folder, _ = bundle_2d
    mark = tmp_path / "mark"
    weights = folder / "models" / "model.pt"
    torch.save({"model": _LeavesAMark(mark)}, weights)
    spec = make_spec(folder, sha256_of(weights))
    assert model_state(spec) == "ready"  # the hash matches: only weights_only protects us
    with pytest.raises(ModelError, match="weights_only=True"):
        load_network(spec, "cpu")
    assert not mark.exists()
