"""Learned-model plugins: local MONAI bundles, checked before they are trusted.

A model is a :class:`ModelSpec` (kept in the database) pointing at a local bundle folder::

    <bundle>/configs/metadata.json
    <bundle>/configs/inference.json   {"network_def": {"_target_": "UNet", "spatial_dims": 2, ...}}
    <bundle>/models/model.pt          a state_dict, checked against ``spec.sha256``

Nothing is downloaded, ever. The configuration is read as plain JSON: MONAI config expressions
(``$...``, ``@...``, ``%...``) are refused, never evaluated, and the network must be one of
:data:`ALLOWED_NETWORKS` with allow-listed arguments of allow-listed types. Weights are read with
``torch.load(..., weights_only=True)`` after their sha256 has been checked.

Output of a model whose ``spec.validated`` is False is marked ``evidence["unvalidated"] = True``,
severity INFO and no report text, so the pipeline keeps it out of drafts and the clinical UI.

Importing this module does not import torch or MONAI (the web process imports it for
:func:`model_state`); they are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pacs_app.ai.base import Finding, PluginResult, SeriesVolume, Severity, StudyContext
from pacs_app.ai.preprocess import to_model_input
from pacs_app.core.errors import InvalidInput
from pacs_app.core.fileio import sha256_of

if TYPE_CHECKING:
    import torch

__all__ = [
    "ALLOWED_NETWORKS",
    "BundleInfo",
    "LearnedModelPlugin",
    "ModelError",
    "ModelSpec",
    "NetworkRule",
    "WeightsNotInstalled",
    "check_weights",
    "load_network",
    "model_state",
    "pick_device",
    "read_bundle",
    "sha256_of",
    "spec_problem",
    "write_bundle",
]

READY = "ready"
WEIGHTS_NOT_INSTALLED = "weights not installed"
SHA256_MISMATCH = "sha256 mismatch"
UNVALIDATED_NOTE = "validated: no — research use only, not for clinical decisions"

_METADATA = Path("configs") / "metadata.json"
_INFERENCE = Path("configs") / "inference.json"
_WEIGHTS = Path("models") / "model.pt"
_MAX_CONFIG_BYTES = 1 << 20
_TASKS = ("segmentation", "classification")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ModelError(InvalidInput):
    """A model or its bundle cannot be used; ``message`` says why (safe to show an admin)."""


class WeightsNotInstalled(ModelError):
    """``models/model.pt`` is not in the bundle folder."""


# --- the specification --------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    """One learned model as registered by an admin. Lists are turned into tuples.

    ``labels`` name the network's output channels in order. For a segmentation network with
    several output channels (softmax/argmax), channel 0 is the background and is not reported;
    with one output channel (sigmoid > 0.5), ``labels[0]`` names the foreground.
    ``intensity_range``: (low, high) in modality units mapped to 0..1 with clipping; None scales
    each image from its own minimum to maximum.
    """

    name: str
    version: str
    kind: str  # "monai_bundle"
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]  # empty: any body part
    bundle_path: str  # a local folder
    sha256: str  # of models/model.pt, lowercase hex
    licence: str
    intended_use: str
    validated: bool
    task: str  # "segmentation" or "classification"
    labels: tuple[str, ...]
    spatial_size: tuple[int, ...]
    intensity_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        # Normalises only; never raises (rows from the database are listed even when wrong):
        # spec_problem() says what is wrong.
        for name in ("modalities", "body_parts", "labels", "spatial_size"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.intensity_range, list):
            object.__setattr__(self, "intensity_range", tuple(self.intensity_range))

    @property
    def weights_path(self) -> Path:
        return Path(self.bundle_path) / _WEIGHTS


def spec_problem(spec: ModelSpec) -> str | None:
    """What makes ``spec`` unusable, or None."""
    if spec.kind != "monai_bundle":
        return f"kind {spec.kind!r} is not supported (only 'monai_bundle')"
    if spec.task not in _TASKS:
        return f"task {spec.task!r} is not one of {', '.join(_TASKS)}"
    if not isinstance(spec.sha256, str) or not _SHA256.fullmatch(spec.sha256):
        return "sha256 must be 64 lowercase hexadecimal digits"
    if not spec.bundle_path or "://" in spec.bundle_path:
        return "bundle_path must be a local folder"
    if not spec.modalities:
        return "no modality given"
    if not spec.labels or not all(isinstance(x, str) and x for x in spec.labels):
        return "labels must be a non-empty list of names"
    size = spec.spatial_size
    if len(size) not in (2, 3) or not all(_is_int(s) and 1 <= s <= 4096 for s in size):
        return "spatial_size must be 2 or 3 positive integers"
    rng = spec.intensity_range
    if rng is not None and (
        len(rng) != 2
        or not all(_is_number(v) for v in rng)
        or not math.isfinite(rng[0])
        or not math.isfinite(rng[1])
        or rng[0] >= rng[1]
    ):
        return "intensity_range must be (low, high) with low < high"
    return None


# --- the allow-list of networks ----------------------------------------------------------

Check = Callable[[Any], Any]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int(v: Any) -> int:
    if not _is_int(v) or not 0 <= v <= 100_000:
        raise ValueError("must be an integer from 0 to 100000")
    return v


def _float(v: Any) -> float:
    if not _is_number(v) or not math.isfinite(v):
        raise ValueError("must be a finite number")
    return float(v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("must be true or false")
    return v


def _ints(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list | tuple) or not 1 <= len(v) <= 16:
        raise ValueError("must be a list of 1 to 16 integers")
    return tuple(_int(x) for x in v)


def _int_or_ints(v: Any) -> int | tuple[int, ...]:
    return _int(v) if _is_int(v) else _ints(v)


def _choice(*options: str) -> Check:
    allowed = {o.lower() for o in options}

    def check(v: Any) -> str:
        if not isinstance(v, str) or v.lower() not in allowed:
            raise ValueError(f"must be one of {', '.join(options)}")
        return v

    return check


_ACT = _choice("RELU", "PRELU", "LEAKYRELU", "ELU", "SELU", "GELU", "TANH", "SIGMOID", "SWISH")
_NORM = _choice("INSTANCE", "BATCH")


@dataclass(frozen=True)
class NetworkRule:
    """An allow-listed network: its argument names with their checks, and fixed arguments."""

    name: str  # the class name in monai.networks.nets
    args: Mapping[str, Check]
    fixed: Mapping[str, Any] = field(default_factory=dict)  # always passed, never from the file

    def constructor(self) -> Callable[..., torch.nn.Module]:
        """The MONAI class (imports MONAI on first use)."""
        from monai.networks import nets

        return getattr(nets, self.name)


_COMMON = {"spatial_dims": _int, "in_channels": _int, "out_channels": _int}

ALLOWED_NETWORKS: Mapping[str, NetworkRule] = MappingProxyType(
    {
        "UNet": NetworkRule(
            "UNet",
            {
                **_COMMON,
                "channels": _ints,
                "strides": _ints,
                "kernel_size": _int_or_ints,
                "up_kernel_size": _int_or_ints,
                "num_res_units": _int,
                "act": _ACT,
                "norm": _NORM,
                "dropout": _float,
                "bias": _bool,
                "adn_ordering": _choice("NDA", "NAD", "DNA", "DAN", "AND", "ADN", "NA", "AN"),
            },
        ),
        "BasicUNet": NetworkRule(
            "BasicUNet",
            {
                **_COMMON,
                "features": _ints,
                "act": _ACT,
                "norm": _NORM,
                "bias": _bool,
                "dropout": _float,
                "upsample": _choice("deconv", "pixelshuffle", "nontrainable"),
            },
        ),
        "DenseNet121": NetworkRule(
            "DenseNet121",
            {
                **_COMMON,
                "init_features": _int,
                "growth_rate": _int,
                "block_config": _ints,
                "bn_size": _int,
                "dropout_prob": _float,
            },
            # pretrained=True would download ImageNet weights: never.
            fixed={"pretrained": False, "progress": False},
        ),
        "SegResNet": NetworkRule(
            "SegResNet",
            {
                **_COMMON,
                "init_filters": _int,
                "dropout_prob": _float,
                "act": _ACT,
                "norm": _NORM,
                "num_groups": _int,
                "use_conv_final": _bool,
                "blocks_down": _ints,
                "blocks_up": _ints,
                "upsample_mode": _choice("deconv", "nontrainable", "pixelshuffle"),
            },
        ),
    }
)
_TARGET_PREFIX = "monai.networks.nets."


# --- the bundle ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleInfo:
    path: str
    metadata: dict[str, Any]
    network: str  # a key of ALLOWED_NETWORKS
    network_args: dict[str, Any]  # checked; sequences as tuples
    weights_path: str


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    yield where, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{where}.{k}", k
            yield from _walk(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{where}[{i}]")


def _expression_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if value[:1] in ("$", "@", "%"):
        return f"starts with {value[0]!r}"
    if "__" in value:
        return "contains '__'"
    if "import" in value.lower():
        return "contains 'import'"
    return None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"{path.parent.name}/{path.name} is missing")
    if path.stat().st_size > _MAX_CONFIG_BYTES:
        raise ModelError(f"{path.name} is larger than 1 MiB")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path.name} is not valid JSON: {exc}") from exc


def _check_network_def(network_def: Any) -> tuple[str, dict[str, Any]]:
    """Validate ``network_def`` against the allow-list; return (network name, arguments)."""
    if not isinstance(network_def, dict):
        raise ModelError("inference.json has no 'network_def' object")
    for where, value in _walk(network_def, "network_def"):
        problem = _expression_problem(value)
        if problem:
            raise ModelError(
                f"{where}: {value!r} {problem}; config expressions are not evaluated, "
                "so the bundle is refused"
            )
    target = network_def.get("_target_")
    if not isinstance(target, str):
        raise ModelError("network_def has no '_target_' naming the network")
    name = target.removeprefix(_TARGET_PREFIX)
    rule = ALLOWED_NETWORKS.get(name)
    if rule is None:
        raise ModelError(
            f"network _target_ {target!r} is not allowed "
            f"(allowed: {', '.join(sorted(ALLOWED_NETWORKS))})"
        )
    args: dict[str, Any] = {}
    for key, value in network_def.items():
        if key == "_target_":
            continue
        check = rule.args.get(key)
        if check is None:
            raise ModelError(f"network_def: unknown argument {key!r} for {name}")
        try:
            args[key] = check(value)
        except ValueError as exc:
            raise ModelError(f"network_def: argument {key!r} {exc} (got {value!r})") from exc
    return name, args


def read_bundle(path: str | Path) -> BundleInfo:
    """Read ``configs/metadata.json`` and ``configs/inference.json`` as plain JSON.

    Returns the metadata and the allow-listed network with its checked arguments. Raises
    :class:`ModelError` for a missing folder or file, invalid JSON, a config expression, a
    network not in :data:`ALLOWED_NETWORKS`, an unknown argument or a value of the wrong type.
    Only JSON configurations are read (not YAML); nothing in them is evaluated.
    """
    folder = Path(path)
    if "://" in str(path):
        raise ModelError("bundle_path must be a local folder, not a URL")
    if not folder.is_dir():
        raise ModelError("bundle folder not found")
    metadata = _read_json(folder / _METADATA)
    if not isinstance(metadata, dict):
        raise ModelError("metadata.json must hold a JSON object")
    inference = _read_json(folder / _INFERENCE)
    if not isinstance(inference, dict):
        raise ModelError("inference.json must hold a JSON object")
    network, args = _check_network_def(inference.get("network_def"))
    return BundleInfo(
        path=str(folder),
        metadata=metadata,
        network=network,
        network_args=args,
        weights_path=str(folder / _WEIGHTS),
    )


_hash_cache: dict[tuple[str, int, int], str] = {}


def _cached_sha256(path: Path) -> str:
    """sha256_of, remembered while the file's size and modification time stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        if len(_hash_cache) > 64:
            _hash_cache.clear()
        _hash_cache[key] = sha256_of(path)
    return _hash_cache[key]


def check_weights(spec: ModelSpec) -> Path:
    """The weights file, once its sha256 matches ``spec.sha256``.

    Raises :class:`WeightsNotInstalled` when ``models/model.pt`` is missing and
    :class:`ModelError` when its sha256 differs.
    """
    path = spec.weights_path
    if not path.is_file():
        raise WeightsNotInstalled(f"{WEIGHTS_NOT_INSTALLED}: models/model.pt is missing")
    found = sha256_of(path)
    if found != spec.sha256:
        raise ModelError(
            f"weights file does not match its sha256 (expected {spec.sha256[:12]}…, "
            f"found {found[:12]}…)"
        )
    return path


def model_state(spec: ModelSpec) -> str:
    """The model's state: ``ready``, ``weights not installed``, ``sha256 mismatch`` or
    ``invalid bundle: <reason>``.

    Never raises and never imports torch. "ready" does not prove that the weights fit the
    network; :func:`load_network` checks that (strictly) when the model is first used.
    """
    try:
        problem = spec_problem(spec)
        if problem:
            return f"invalid bundle: {problem}"
        if not spec.weights_path.is_file():
            return WEIGHTS_NOT_INSTALLED
        read_bundle(spec.bundle_path)
        if _cached_sha256(spec.weights_path) != spec.sha256:
            return SHA256_MISMATCH
        return READY
    except ModelError as exc:
        return f"invalid bundle: {exc.message}"
    except Exception as exc:  # an unreadable file, a permission problem...
        return f"invalid bundle: {type(exc).__name__}: {exc}"


def write_bundle(
    folder: str | Path,
    *,
    network: str,
    args: dict[str, Any],
    state_dict: Mapping[str, Any],
    metadata: dict[str, Any],
) -> str:
    """Write a bundle that :func:`read_bundle` accepts; return the weights' sha256.

    ``network`` and ``args`` are checked against the allow-list first (raises
    :class:`ModelError`), so a refused bundle is never written. Does not check that
    ``state_dict`` fits the network.
    """
    import torch

    network_def = {"_target_": network, **{k: _jsonable(v) for k, v in args.items()}}
    _check_network_def(network_def)
    root = Path(folder)
    (root / "configs").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    (root / _METADATA).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
    (root / _INFERENCE).write_text(
        json.dumps({"network_def": network_def}, indent=2), encoding="utf-8"
    )
    torch.save(dict(state_dict), root / _WEIGHTS)
    return sha256_of(root / _WEIGHTS)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- loading ------------------------------------------------------------------------------


def pick_device() -> str:
    """``"cuda"`` when a GPU is usable, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


_CACHE_SIZE = 4
_cache: OrderedDict[tuple[str, str, str], tuple[tuple[Any, ...], BundleInfo, Any]] = OrderedDict()
_cache_lock = threading.Lock()


def _short(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())  # no terminal colours
    return text if len(text) <= limit else text[:limit] + "…"


def _extract_state_dict(obj: Any) -> Mapping[str, Any]:
    import torch

    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError("weights file holds no state_dict")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ModelError("weights file holds no state_dict (entries must be named tensors)")
    return obj


def _build_network(info: BundleInfo) -> torch.nn.Module:
    rule = ALLOWED_NETWORKS[info.network]
    try:
        return rule.constructor()(**info.network_args, **rule.fixed)
    except Exception as exc:
        raise ModelError(
            f"network {info.network} cannot be built from its arguments: {_short(exc)}"
        ) from exc


def _load(spec: ModelSpec, device: str) -> tuple[BundleInfo, torch.nn.Module]:
    problem = spec_problem(spec)
    if problem:
        raise ModelError(problem)
    info = read_bundle(spec.bundle_path)
    weights = Path(info.weights_path)
    try:
        st = weights.stat()
    except FileNotFoundError:
        raise WeightsNotInstalled(f"{WEIGHTS_NOT_INSTALLED}: models/model.pt is missing") from None
    key = (str(Path(spec.bundle_path).resolve()), spec.sha256, device)
    signature = (st.st_size, st.st_mtime_ns, info.network, repr(sorted(info.network_args.items())))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == signature:
            _cache.move_to_end(key)
            return hit[1], hit[2]

    import torch

    # Hash the very bytes that are loaded (no window for the file to change in between).
    data = weights.read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != spec.sha256:
        raise ModelError(
            f"weights file does not match its sha256 (expected {spec.sha256[:12]}…, "
            f"found {found[:12]}…)"
        )
    try:
        obj = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"weights file cannot be loaded as plain tensors (weights_only=True): {_short(exc)}"
        ) from exc
    state_dict = _extract_state_dict(obj)
    network = _build_network(info)
    try:
        network.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"weights do not fit the {info.network} network of the bundle: {_short(exc)}"
        ) from exc
    network.to(device).eval().requires_grad_(False)
    with _cache_lock:
        _cache[key] = (signature, info, network)
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return info, network


def load_network(spec: ModelSpec, device: str) -> torch.nn.Module:
    """The bundle's network with its checked weights, in eval mode on ``device``.

    The weights must match ``spec.sha256`` and are read with ``weights_only=True``; a plain
    state_dict or ``{"model": ...}`` / ``{"state_dict": ...}`` is accepted and loaded with
    ``strict=True``. Loaded networks are kept in a small LRU cache per (bundle, sha256, device).
    Raises :class:`ModelError` (:class:`WeightsNotInstalled` for a missing file) naming the
    problem.
    """
    return _load(spec, device)[1]


# --- the plugin ---------------------------------------------------------------------------


def _first_tensor(output: Any) -> torch.Tensor:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, list | tuple) and output and isinstance(output[0], torch.Tensor):
        return output[0]  # deep supervision: the first output is the final one
    raise ModelError(f"the network returned {type(output).__name__}, not a tensor")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


class LearnedModelPlugin:
    """Runs one checked MONAI bundle on the first matching greyscale series.

    A 2D model (``len(spec.spatial_size) == 2``) runs on every frame, resized to
    ``spatial_size``. A 3D segmentation model runs on the whole volume: with a sliding window
    of ``spatial_size`` at native resolution when the volume is larger in any direction, else
    resized to ``spatial_size``; a 3D classifier always on the resized volume.
    """

    kind = "learned"
    batch_size = 8

    def __init__(self, spec: ModelSpec, *, device: str | None = None):
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.description = f"{spec.task} model {spec.name} {spec.version}: {spec.intended_use}"
        self.device = device  # None: the context's device

    # -- selection --

    def _matches(self, series: SeriesVolume, context: StudyContext) -> bool:
        spec = self.spec
        if series.is_color or series.pixels.ndim != 3:
            return False
        if series.modality.upper() not in {m.upper() for m in spec.modalities}:
            return False
        if spec.body_parts:
            part = (series.body_part or context.body_part or "").upper()
            if part not in {b.upper() for b in spec.body_parts}:
                return False
        return not (len(spec.spatial_size) == 3 and series.frames < 2)

    def applies(self, context: StudyContext) -> bool:
        return any(self._matches(s, context) for s in context.series)

    # -- running --

    def run(self, context: StudyContext) -> PluginResult:
        spec = self.spec
        series = next((s for s in context.series if self._matches(s, context)), None)
        if series is None:
            return PluginResult(warnings=[f"{spec.name}: no matching series"])
        import torch

        warnings: list[str] = []
        device = self.device or context.device or "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            warnings.append(f"{spec.name}: {device} is not available; ran on the CPU")
            device = "cpu"
        try:
            info, network = _load(spec, device)
            out_channels = int(info.network_args.get("out_channels", 0))
            if out_channels != len(spec.labels):
                raise ModelError(
                    f"the network has {out_channels} output channel(s) but the model lists "
                    f"{len(spec.labels)} label(s)"
                )
            with torch.no_grad():
                if spec.task == "segmentation":
                    findings = self._segment(series, network, info, device)
                else:
                    findings = self._classify(series, network, info, device)
        except InvalidInput as exc:  # ModelError, or an input the pre-processing refuses
            return PluginResult(
                warnings=[*warnings, f"{spec.name} {spec.version} not run: {exc.message}"]
            )
        except RuntimeError as exc:  # e.g. out of memory, or a size the network cannot take
            return PluginResult(
                warnings=[*warnings, f"{spec.name} {spec.version} failed: {_short(exc)}"]
            )
        return PluginResult(findings=findings, warnings=warnings)

    def _frames_input(self, series: SeriesVolume, device: str) -> Iterator[torch.Tensor]:
        import torch

        spec = self.spec
        for start in range(0, series.frames, self.batch_size):
            batch = [
                to_model_input(series, spec.spatial_size, spec.intensity_range, frame=i)
                for i in range(start, min(start + self.batch_size, series.frames))
            ]
            yield torch.stack(batch).to(device)

    def _segment(
        self, series: SeriesVolume, network: Any, info: BundleInfo, device: str
    ) -> list[Finding]:
        import torch

        spec = self.spec
        multi = len(spec.labels) > 1
        channels = len(spec.labels)
        frame_counts: list[torch.Tensor] = []  # per frame (2D) or one row (3D): voxels per label
        total = 0
        if len(spec.spatial_size) == 2:
            how = f"each frame resized to {spec.spatial_size[0]}x{spec.spatial_size[1]}"
            for x in self._frames_input(series, device):
                frame_counts.append(_label_counts(_first_tensor(network(x)), multi, channels))
                total += x.shape[0] * math.prod(spec.spatial_size)
        else:
            native = tuple(series.pixels.shape)
            if any(n > s for n, s in zip(native, spec.spatial_size, strict=True)):
                from monai.inferers import SlidingWindowInferer

                # native size: to_model_input only scales the intensities
                x = to_model_input(series, native, spec.intensity_range)[None].to(device)
                inferer = SlidingWindowInferer(
                    roi_size=spec.spatial_size, sw_batch_size=2, overlap=0.25, mode="gaussian"
                )
                output = _first_tensor(inferer(inputs=x, network=network))
                how = (
                    "sliding window of "
                    f"{'x'.join(map(str, spec.spatial_size))} voxels at native resolution"
                )
            else:
                x = to_model_input(series, spec.spatial_size, spec.intensity_range)
                x = x[None].to(device)
                output = _first_tensor(network(x))
                how = f"volume resized to {'x'.join(map(str, spec.spatial_size))} voxels"
            frame_counts.append(_label_counts(output, multi, channels))
            total = math.prod(output.shape[2:])
        counts = torch.cat(frame_counts).to(torch.float64)  # (frames or 1, channels)
        post = "softmax argmax per voxel" if multi else "sigmoid > 0.5 per voxel"
        method = self._method(info, device, f"{how}; {post}")
        limitations = self._limitations(
            "no resampling to the spacing the model was trained on",
            "volumes are derived from the voxel count and the header spacing",
        )
        findings = []
        for channel, label in enumerate(spec.labels):
            if multi and channel == 0:
                continue  # the background
            fraction = float(counts[:, channel].sum()) / total if total else 0.0
            value, unit, where = _measure(series, fraction)
            evidence = self._evidence(
                label=label,
                channel=channel,
                fraction=fraction,
                voxels=int(counts[:, channel].sum()),
            )
            if len(spec.spatial_size) == 2 and counts[:, channel].max() > 0:
                evidence["key_image"] = _key_image(series, int(counts[:, channel].argmax()))
            text = f"{value:.1f} {unit}" if unit != "%" else f"{value:.1f}%"
            findings.append(
                self._finding(
                    code=f"model.{_slug(spec.name)}.{_slug(label)}",
                    title=f"{label}: {text} ({fraction * 100:.1f}% of the {where})",
                    value=value,
                    unit=unit,
                    value_text=f"{fraction * 100:.2f}% of the {where}",
                    method=method,
                    limitations=limitations,
                    series=series,
                    evidence=evidence,
                    report=f"{label} measures {text} (AI generated by {spec.name} "
                    f"{spec.version}, to be verified).",
                )
            )
        return findings

    def _classify(
        self, series: SeriesVolume, network: Any, info: BundleInfo, device: str
    ) -> list[Finding]:
        import torch

        spec = self.spec
        sigmoid = len(spec.labels) == 1
        if len(spec.spatial_size) == 2:
            outputs = [_first_tensor(network(x)) for x in self._frames_input(series, device)]
            logits = torch.cat(outputs)
            how = f"each frame resized to {spec.spatial_size[0]}x{spec.spatial_size[1]}"
        else:
            x = to_model_input(series, spec.spatial_size, spec.intensity_range)
            logits = _first_tensor(network(x[None].to(device)))
            how = f"volume resized to {'x'.join(map(str, spec.spatial_size))} voxels"
        logits = logits.reshape(logits.shape[0], -1).float().cpu()
        probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=1)
        activation = "sigmoid" if sigmoid else "softmax over the labels"
        several = probs.shape[0] > 1
        method = self._method(
            info,
            device,
            f"{how}; probability by {activation}"
            + ("; highest over the frames" if several else ""),
        )
        limitations = self._limitations("the probability is not calibrated to prevalence")
        findings = []
        for channel, label in enumerate(spec.labels):
            p, frame = probs[:, channel].max(dim=0)
            prob = float(p)
            evidence = self._evidence(label=label, channel=channel, activation=activation)
            if len(spec.spatial_size) == 2:
                evidence["key_image"] = _key_image(series, int(frame))
            findings.append(
                self._finding(
                    code=f"model.{_slug(spec.name)}.{_slug(label)}",
                    title=f"{label}: probability {prob:.2f}",
                    value=prob,
                    unit="probability",
                    value_text=f"{prob:.2f} ({activation})",
                    method=method,
                    limitations=limitations,
                    series=series,
                    evidence=evidence,
                    report=f"{label}: probability {prob:.2f} (AI generated by {spec.name} "
                    f"{spec.version}, to be verified).",
                )
            )
        return findings

    # -- what every finding carries --

    def _method(self, info: BundleInfo, device: str, steps: str) -> str:
        spec = self.spec
        scaling = (
            f"intensities {spec.intensity_range[0]:g}..{spec.intensity_range[1]:g} mapped to 0..1"
            if spec.intensity_range
            else "intensities scaled from each image's minimum to maximum"
        )
        return (
            f"{spec.task} by learned model {spec.name} {spec.version} (MONAI bundle "
            f"{Path(info.path).name}, network {info.network}, weights sha256 "
            f"{spec.sha256[:12]}, device {device}); {scaling}; {steps}"
        )

    def _limitations(self, *notes: str) -> str:
        spec = self.spec
        parts = [f"intended use: {spec.intended_use.strip().rstrip('.') or 'not stated'}"]
        parts += ["AI generated, to be verified by a radiologist", *notes]
        if not spec.validated:
            parts.append(UNVALIDATED_NOTE)
        return "; ".join(parts)

    def _evidence(self, **extra: Any) -> dict[str, Any]:
        spec = self.spec
        return {
            "model": {
                "name": spec.name,
                "version": spec.version,
                "sha256": spec.sha256,
                "licence": spec.licence,
            },
            "unvalidated": not spec.validated,
            **extra,
        }

    def _finding(
        self,
        *,
        code: str,
        title: str,
        value: float,
        unit: str,
        value_text: str,
        method: str,
        limitations: str,
        series: SeriesVolume,
        evidence: dict[str, Any],
        report: str,
    ) -> Finding:
        validated = self.spec.validated
        return Finding(
            code=code,
            title=title if validated else f"(unvalidated model) {title}",
            # No validated operating point is known for any model: a measurement, not a call.
            severity=Severity.INFO,
            method=method,
            limitations=limitations,
            value=value,
            unit=unit,
            value_text=value_text,
            series_uid=series.series_uid,
            evidence=evidence,
            report_text=report if validated else "",
        )


def _label_counts(output: torch.Tensor, multi: bool, channels: int) -> torch.Tensor:
    """Logits ``(N, C, *spatial)`` -> voxels per label ``(N, channels)`` (int64, on the CPU)."""
    import torch

    if multi:
        labels = output.argmax(dim=1).reshape(output.shape[0], -1)
        counts = torch.stack([(labels == c).sum(dim=1) for c in range(channels)], dim=1)
    else:
        fg = (torch.sigmoid(output[:, 0]) > 0.5).reshape(output.shape[0], -1)
        counts = fg.sum(dim=1, keepdim=True)
    return counts.cpu()


def _measure(series: SeriesVolume, fraction: float) -> tuple[float, str, str]:
    """(value, unit, what the fraction is of) for a fraction of the series' voxels."""
    frames, rows, cols = series.pixels.shape[:3]
    dz, dy, dx = series.spacing
    if frames > 1 and dz and dy and dx:
        return fraction * frames * rows * cols * dz * dy * dx / 1000.0, "mL", "volume"
    if frames == 1 and dy and dx:
        return fraction * rows * cols * dy * dx / 100.0, "cm²", "image"
    return fraction * 100.0, "%", "image" if frames == 1 else "frames"


def _key_image(series: SeriesVolume, frame: int) -> dict[str, Any]:
    if frame < len(series.frame_sources):
        sop_uid, index = series.frame_sources[frame]
        return {"sop_instance_uid": sop_uid, "frame": index}
    return {"frame": frame}
