"""Choose the series of a study to analyse and load each one into a :class:`SeriesVolume`.

:func:`select_series` splits a study's series into image series (ordered: the modality of the
order first, then the most frames, localizers last) and the rest (SR, KO, PR, RT objects other
than RT Image, SEG, documents, waveforms), which become :class:`SeriesInfo` for the record.

:func:`load_series` reads every instance of one series, decodes every frame (multi-frame and
enhanced multi-frame included) and returns float32 modality values (HU for CT) with
MONOCHROME1 inverted, or uint8 RGB for colour, in spatial order with the geometry the headers
give. What cannot be decoded is skipped with a warning; a series of which nothing can be
decoded raises :class:`SeriesLoadError`.

Example::

    images, skipped = select_series(candidates, "CT", "CHEST")
    volume = load_series(images[0])
    volume.pixels.shape  # (slices, rows, columns), float32 HU

This module imports neither torch nor MONAI.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.multival import MultiValue

from pacs_app.ai.base import SeriesInfo, SeriesVolume
from pacs_app.core.errors import InvalidInput
from pacs_app.dicom import pixels
from pacs_app.dicom.orientation import cosines as plane_cosines

# Modalities whose series hold no image to analyse (RTDOSE has pixels, but they are a dose grid).
NON_IMAGE_MODALITIES = frozenset(
    {
        "AU",
        "DOC",
        "ECG",
        "EPS",
        "FID",
        "HD",
        "KO",
        "PLAN",
        "PR",
        "REG",
        "RTDOSE",
        "RTPLAN",
        "RTRECORD",
        "RTSTRUCT",
        "RWV",
        "SEG",
        "SR",
    }
)
_STORAGE = "1.2.840.10008.5.1.4.1.1."
# SOP classes without an image to analyse: SR and KO (88.x), waveforms (9.x), presentation
# states (11.x), encapsulated documents (104.x), raw data, registration, fiducials, SEG and
# surfaces (66.x), MR spectroscopy (4.2), RT objects (481.x) other than RT Image (481.1).
_NON_IMAGE_SOP_PREFIXES = tuple(
    _STORAGE + suffix for suffix in ("88.", "9.", "11.", "104.", "66", "4.2", "481.")
)
_RT_IMAGE = _STORAGE + "481.1"
_LOCALIZER_WORDS = (
    "LOCALIZER",
    "LOCALISER",
    "SCOUT",
    "TOPOGRAM",
    "SURVIEW",
    "SCANOGRAM",
    "PILOT",
    "SURVEY",
)
_PROJECTION_RADIOGRAPHY = frozenset({"CR", "DX", "DR", "RG"})


class SeriesLoadError(InvalidInput):
    """A series cannot be loaded: nothing decodes, or it is too large."""

    code = "series_load_error"


@dataclass(frozen=True)
class InstanceRef:
    """One stored instance, as the index knows it (the file is only read by :func:`load_series`)."""

    path: Path
    sop_instance_uid: str
    instance_number: int | None
    number_of_frames: int
    rows: int | None
    columns: int | None
    dicom_json: dict[str, Any]  # the header as DICOM JSON, bulk data left out
    sop_class_uid: str = ""  # taken from ``dicom_json`` when empty

    @property
    def sop_class(self) -> str:
        return self.sop_class_uid or _json_text(self.dicom_json, "00080016")

    @property
    def image_type(self) -> list[str]:
        return [str(v).upper() for v in _json_values(self.dicom_json, "00080008")]


@dataclass
class SeriesCandidate:
    series_uid: str
    modality: str
    body_part: str
    description: str
    instances: list[InstanceRef] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(max(1, ref.number_of_frames or 1) for ref in self.instances)

    @property
    def is_image(self) -> bool:
        """Whether the series holds images to analyse (pixel data of an image SOP class)."""
        if self.modality.upper() in NON_IMAGE_MODALITIES:
            return False
        return any(
            (ref.rows or 0) > 0 and (ref.columns or 0) > 0 and _is_image_sop(ref.sop_class)
            for ref in self.instances
        )

    @property
    def is_localizer(self) -> bool:
        """A localizer (scout, topogram): ImageType says LOCALIZER, or the description does."""
        if any("LOCALIZER" in ref.image_type for ref in self.instances):
            return True
        description = self.description.upper()
        return any(word in description for word in _LOCALIZER_WORDS)


def _is_image_sop(sop_class: str) -> bool:
    if not sop_class or sop_class == _RT_IMAGE:
        return True
    return not sop_class.startswith(_NON_IMAGE_SOP_PREFIXES)


def _same_modality(a: str, b: str) -> bool:
    a, b = a.strip().upper(), b.strip().upper()
    return a == b or (a in _PROJECTION_RADIOGRAPHY and b in _PROJECTION_RADIOGRAPHY)


def select_series(
    series: list[SeriesCandidate], order_modality: str, order_body_part: str
) -> tuple[list[SeriesCandidate], list[SeriesInfo]]:
    """Split ``series`` into image series to analyse and the others (as :class:`SeriesInfo`).

    All image series are kept, ordered: localizers (scouts, topograms) last; before them the
    series of the order's modality (CR and DX count as one), then those whose body part does
    not contradict the order's (an empty one does not), then the most frames first.
    """
    images: list[SeriesCandidate] = []
    skipped: list[SeriesInfo] = []
    for candidate in series:
        if candidate.instances and candidate.is_image:
            images.append(candidate)
        else:
            skipped.append(
                SeriesInfo(
                    series_uid=candidate.series_uid,
                    modality=candidate.modality,
                    description=candidate.description,
                    instances=len(candidate.instances),
                )
            )
    wanted_part = order_body_part.strip().upper()

    def rank(candidate: SeriesCandidate) -> tuple[bool, bool, bool, int]:
        part = candidate.body_part.strip().upper()
        return (
            candidate.is_localizer,
            bool(order_modality.strip()) and not _same_modality(candidate.modality, order_modality),
            bool(wanted_part and part and part != wanted_part),
            -candidate.frames,
        )

    return sorted(images, key=rank), skipped  # sorted() is stable: ties keep the study's order


def candidates_from_files(paths: Iterable[str | Path]) -> list[SeriesCandidate]:
    """Group DICOM files into series by reading their headers (no pixel data).

    For tools and tests; the pipeline builds candidates from the index instead. Files that are
    not readable DICOM are left out.
    """
    from pacs_app.dicom.dicomjson import dataset_to_json

    by_series: dict[str, SeriesCandidate] = {}
    for path in paths:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            header = dataset_to_json(ds)
        except Exception:  # noqa: S112 - pydicom raises many types on files that are not DICOM
            continue
        uid = _json_text(header, "0020000E")
        candidate = by_series.setdefault(
            uid,
            SeriesCandidate(
                series_uid=uid,
                modality=_json_text(header, "00080060"),
                body_part=_json_text(header, "00180015"),
                description=_json_text(header, "0008103E"),
            ),
        )
        candidate.instances.append(instance_ref(Path(path), header))
    return list(by_series.values())


def instance_ref(path: Path, dicom_json: dict[str, Any]) -> InstanceRef:
    """An :class:`InstanceRef` from a file's path and its header as DICOM JSON."""
    return InstanceRef(
        path=path,
        sop_instance_uid=_json_text(dicom_json, "00080018"),
        instance_number=_json_int(dicom_json, "00200013"),
        number_of_frames=max(1, _json_int(dicom_json, "00280008") or 1),
        rows=_json_int(dicom_json, "00280010"),
        columns=_json_int(dicom_json, "00280011"),
        dicom_json=dicom_json,
        sop_class_uid=_json_text(dicom_json, "00080016"),
    )


def _json_values(dicom_json: dict[str, Any], tag: str) -> list[Any]:
    element = dicom_json.get(tag)
    return list(element.get("Value") or []) if isinstance(element, dict) else []


def _json_text(dicom_json: dict[str, Any], tag: str) -> str:
    values = _json_values(dicom_json, tag)
    return str(values[0]).strip() if values and values[0] is not None else ""


def _json_int(dicom_json: dict[str, Any], tag: str) -> int | None:
    try:
        return int(float(_json_values(dicom_json, tag)[0]))
    except (IndexError, TypeError, ValueError):
        return None


# --- loading -------------------------------------------------------------------------------


@dataclass
class _Frame:
    index: int  # frame index within the instance
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    spacing_note: str  # where an unusual pixel spacing came from ("" for PixelSpacing)
    thickness: float | None
    slice_spacing: float | None  # SpacingBetweenSlices
    # Set once the frame is decoded: where its pixels are (a slot of _Loader.buffer, else
    # ``pixels``: float32 (rows, columns) or uint8 (rows, columns, 3)), and their shape.
    slot: int = -1
    pixels: np.ndarray | None = None
    shape: tuple[int, ...] = ()
    value_range: tuple[float, float] = (0.0, 0.0)
    instance: int = -1  # index into _Loader.instances


@dataclass
class _Instance:
    sop_uid: str
    number: int | None
    photometric: str
    transfer_syntax: str
    header: dict[str, Any]


class _Loader:
    """Collects decoded frames instance by instance, then builds the volume.

    Frames go straight into one array sized for the ``expected`` frames (the shape and type of
    the first decoded frame), and are put in order there at the end, so the peak memory is
    about the size of the volume; a frame of another shape, or beyond ``expected``, is kept
    apart (and the volume then built by copying).
    """

    def __init__(self, max_frames: int, expected: int):
        self.max_frames = max_frames
        self.expected = min(max(expected, 1), max_frames)
        self.buffer: np.ndarray | None = None
        self.used = 0  # slots of ``buffer`` filled
        self.frames: list[_Frame] = []
        self.instances: list[_Instance] = []
        self.warnings: list[str] = []
        self.failures: list[str] = []

    def add(
        self,
        ds: pydicom.Dataset,
        *,
        sop_uid: str,
        instance_number: int | None,
        header: dict[str, Any],
    ) -> None:
        """Decode every frame of ``ds``; what fails becomes a warning (pydicom's own warnings
        about odd header values are silenced: the frames decode or they do not)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._add(ds, sop_uid, instance_number, header)

    def _add(
        self,
        ds: pydicom.Dataset,
        sop_uid: str,
        instance_number: int | None,
        header: dict[str, Any],
    ) -> None:
        count = pixels.frame_count(ds)
        name = _instance_name(sop_uid, instance_number)
        if len(self.frames) + count > self.max_frames:
            raise SeriesLoadError(
                f"The series has more than {self.max_frames} frames ({name} brings the count "
                f"to {len(self.frames) + count}); it is too large to analyse."
            )
        try:
            photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            colour = pixels.is_color(ds)
            geometry = _InstanceGeometry(ds, count)
            frames = [geometry.frame(index) for index in range(count)]
        except Exception as exc:  # a malformed header value (pydicom raises many types)
            self.fail(f"The header of {name} cannot be read, so it was left out: {_reason(exc)}")
            return
        self.instances.append(
            _Instance(sop_uid, instance_number, photometric, str(syntax or ""), header)
        )
        for index, frame in enumerate(frames):
            try:
                stored = pixels.decode_frame(ds, index)
                if colour or stored.ndim == 3:
                    image, value_range = _colour(ds, stored), (0.0, 255.0)
                else:
                    image, value_range = _greyscale(ds, stored, index, photometric)
            except Exception as exc:  # decoders and LUTs raise many types on corrupt data
                where = f"frame {index + 1} of {name}" if count > 1 else name
                self.fail(f"The pixel data of {where} cannot be decoded: {_reason(exc)}")
                continue
            frame.value_range, frame.instance = value_range, len(self.instances) - 1
            self._store(frame, image)
            self.frames.append(frame)

    def _store(self, frame: _Frame, image: np.ndarray) -> None:
        if self.buffer is None:
            try:
                self.buffer = np.empty((self.expected, *image.shape), dtype=image.dtype)
            except MemoryError:
                raise SeriesLoadError(
                    f"The series ({self.expected} frames of {_size(image.shape)}) does not fit "
                    "in memory."
                ) from None
        frame.shape = image.shape
        if (
            image.shape == self.buffer.shape[1:]
            and image.dtype == self.buffer.dtype
            and self.used < len(self.buffer)
        ):
            self.buffer[self.used] = image
            frame.slot = self.used
            self.used += 1
        else:
            frame.pixels = image

    def fail(self, message: str) -> None:
        self.failures.append(message)
        self.warnings.append(message)

    def build(
        self, *, series_uid: str, modality: str, body_part: str, description: str
    ) -> SeriesVolume:
        if not self.frames:
            reasons = " ".join(self.failures[:3]) or "The series has no instance."
            more = f" (and {len(self.failures) - 3} more)" if len(self.failures) > 3 else ""
            raise SeriesLoadError(
                f"No frame of series {series_uid or '(no UID)'} could be decoded. {reasons}{more}"
            )
        frames = self._largest_size_group()
        frames, slice_spacing = self._order(frames)
        if self.buffer is not None and len(frames) == self.used and frames[0].slot >= 0:
            # Exactly the frames of the buffer: order them in place.
            volume_pixels = self.buffer[: self.used]
            _permute_in_place(volume_pixels, [frame.slot for frame in frames])
        else:
            volume_pixels = self._copy(frames)
        self.buffer = None
        used = list(dict.fromkeys(frame.instance for frame in frames))
        first = frames[0]
        spacing = first.pixel_spacing or (None, None)
        if first.spacing_note:
            self.warnings.append(first.spacing_note)
        if len({f.pixel_spacing for f in frames}) > 1:
            self.warnings.append(
                "The pixel spacing differs between frames; that of the first frame is given."
            )
        photometrics = Counter(self.instances[i].photometric for i in used)
        return SeriesVolume(
            series_uid=series_uid,
            modality=modality,
            body_part=body_part,
            description=description,
            pixels=volume_pixels,
            spacing=(slice_spacing, spacing[0], spacing[1]),
            positions=[f.position for f in frames],
            orientations=[f.orientation for f in frames],
            instance_numbers=[self.instances[f.instance].number for f in frames],
            frame_sources=[(self.instances[f.instance].sop_uid, f.index) for f in frames],
            headers=[self.instances[i].header for i in used],
            photometric=photometrics.most_common(1)[0][0],
            slice_thickness=first.thickness,
            value_range=(
                min(f.value_range[0] for f in frames),
                max(f.value_range[1] for f in frames),
            ),
            transfer_syntaxes=list(dict.fromkeys(self.instances[i].transfer_syntax for i in used)),
            warnings=self.warnings,
        )

    def _copy(self, frames: list[_Frame]) -> np.ndarray:
        first = frames[0]
        source = first.pixels if first.slot < 0 else self.buffer
        out = np.empty((len(frames), *first.shape), dtype=source.dtype)
        for i, frame in enumerate(frames):
            out[i] = frame.pixels if frame.slot < 0 else self.buffer[frame.slot]
            frame.pixels = None  # release each frame as it is copied
        return out

    def _largest_size_group(self) -> list[_Frame]:
        sizes = Counter(frame.shape for frame in self.frames)  # insertion order breaks ties
        kept = sizes.most_common(1)[0][0]
        for shape, count in sizes.items():
            if shape == kept:
                continue
            uids = list(
                dict.fromkeys(
                    self.instances[f.instance].sop_uid for f in self.frames if f.shape == shape
                )
            )
            listed = ", ".join(uids[:3]) + (f" and {len(uids) - 3} more" if len(uids) > 3 else "")
            self.warnings.append(
                f"{count} frame(s) of {_size(shape)} (instance(s) {listed}) were left out: the "
                f"series mixes image sizes, and the {sizes[kept]} frame(s) of {_size(kept)} "
                "were kept."
            )
        return [frame for frame in self.frames if frame.shape == kept]

    def _order(self, frames: list[_Frame]) -> tuple[list[_Frame], float | None]:
        """Frames in spatial order where every frame has a position and all share one
        orientation, else in instance-number order; and the slice spacing."""

        def by_number(frame: _Frame) -> tuple[bool, int, str, int]:
            instance = self.instances[frame.instance]
            return (instance.number is None, instance.number or 0, instance.sop_uid, frame.index)

        frames = sorted(frames, key=by_number)
        header_spacing = next((f.slice_spacing for f in frames if f.slice_spacing), None)
        if not all(f.position is not None and f.orientation is not None for f in frames):
            return frames, header_spacing
        normals = [_normal(f.orientation) for f in frames]
        reference = normals[0]
        if reference is None or any(
            n is None or abs(float(np.dot(n, reference))) < 0.999 for n in normals
        ):
            if len(frames) > 1:
                self.warnings.append(
                    "The frames do not share one orientation (e.g. a three-plane localizer): "
                    "they are in instance-number order and no slice spacing is derived."
                )
            return frames, None
        offsets = {id(f): float(np.dot(reference, f.position)) for f in frames}
        frames = sorted(frames, key=lambda f: offsets[id(f)])  # stable: number order on ties
        distinct = np.unique(np.round([offsets[id(f)] for f in frames], 3))
        if len(distinct) < len(frames):
            self.warnings.append(
                f"{len(frames) - len(distinct)} frame(s) share a position with another frame "
                "(several phases, echoes or repeats in one series?)."
            )
        if len(distinct) < 2:
            return frames, header_spacing
        gaps = np.diff(distinct)
        median = float(np.median(gaps))
        if gaps.max() > 1.1 * median or gaps.min() < 0.9 * median:
            self.warnings.append(
                f"The slice spacing is irregular ({gaps.min():.3g} to {gaps.max():.3g} mm); "
                f"the median, {median:.3g} mm, is given."
            )
        return frames, median


def _permute_in_place(array: np.ndarray, order: list[int]) -> None:
    """``array[i] = array[order[i]]`` for every ``i``, with one frame of extra memory."""
    done = [False] * len(order)
    spare = np.empty_like(array[0]) if len(order) else None
    for start in range(len(order)):
        if done[start] or order[start] == start:
            done[start] = True
            continue
        spare[...] = array[start]
        i = start
        while True:  # follow the cycle: each position takes the frame it points to
            done[i] = True
            j = order[i]
            if j == start:
                array[i] = spare
                break
            array[i] = array[j]
            i = j


class _InstanceGeometry:
    """Geometry of each frame of one instance: functional groups first (enhanced objects),
    then the top-level attributes."""

    def __init__(self, ds: pydicom.Dataset, count: int):
        self.ds = ds
        self.count = count
        self.enhanced = (
            "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
        )

    def _group(self, index: int, sequence: str) -> pydicom.Dataset | None:
        if not self.enhanced:
            return None
        return pixels._functional_group(self.ds, index, sequence)

    def frame(self, index: int) -> _Frame:
        spacing, note = self.pixel_spacing(index)
        return _Frame(
            index=index,
            position=self.position(index),
            orientation=self.orientation(index),
            pixel_spacing=spacing,
            spacing_note=note,
            thickness=self.measure(index, "SliceThickness"),
            slice_spacing=self.measure(index, "SpacingBetweenSlices"),
        )

    def position(self, index: int) -> tuple[float, float, float] | None:
        group = self._group(index, "PlanePositionSequence")
        if group is not None:
            return _floats(group.get("ImagePositionPatient"), 3)
        # A classic multi-frame header gives the position of its first frame only.
        if index == 0 or self.count == 1:
            return _floats(self.ds.get("ImagePositionPatient"), 3)
        return None

    def orientation(self, index: int) -> tuple[float, ...] | None:
        return plane_cosines(self.ds, index)

    def measure(self, index: int, keyword: str) -> float | None:
        group = self._group(index, "PixelMeasuresSequence")
        value = _positive(group.get(keyword)) if group is not None else None
        return value if value is not None else _positive(self.ds.get(keyword))

    def pixel_spacing(self, index: int) -> tuple[tuple[float, float] | None, str]:
        """(between rows, between columns) in mm, and a note where it is not PixelSpacing."""
        group = self._group(index, "PixelMeasuresSequence")
        for source in (group, self.ds):
            spacing = _spacing_pair(source.get("PixelSpacing")) if source is not None else None
            if spacing:
                return spacing, ""
        spacing = _spacing_pair(self.ds.get("ImagerPixelSpacing"))
        if spacing:
            return spacing, (
                "The pixel spacing is the ImagerPixelSpacing (at the detector, not corrected "
                "for geometric magnification): PixelSpacing is absent."
            )
        spacing = _ultrasound_spacing(self.ds)
        if spacing:
            return spacing, (
                "The pixel spacing comes from the ultrasound region calibration "
                "(PhysicalDeltaX/Y) and holds inside the calibrated region only."
            )
        return None, ""


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count and all(np.isfinite(numbers)) else None


def _positive(value: Any) -> float | None:
    try:
        number = float(value[0] if isinstance(value, list | tuple | MultiValue) else value)
    except (TypeError, ValueError, IndexError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def _spacing_pair(value: Any) -> tuple[float, float] | None:
    pair = _floats(value, 2)
    return pair if pair is not None and pair[0] > 0 and pair[1] > 0 else None


def _ultrasound_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """(between rows, between columns) in mm where every 2D region in cm agrees on it."""
    deltas = set()
    for region in ds.get("SequenceOfUltrasoundRegions") or []:
        if region.get("RegionSpatialFormat") != 1:
            continue
        if region.get("PhysicalUnitsXDirection") != 3 or region.get("PhysicalUnitsYDirection") != 3:
            return None  # a 2D region in other units: no single answer
        pair = _spacing_pair([region.get("PhysicalDeltaY"), region.get("PhysicalDeltaX")])
        if pair is None:
            return None
        deltas.add((round(pair[0] * 10, 6), round(pair[1] * 10, 6)))  # cm to mm
    return deltas.pop() if len(deltas) == 1 else None


def _normal(orientation: tuple[float, ...] | None) -> np.ndarray | None:
    if orientation is None:
        return None
    normal = np.cross(orientation[:3], orientation[3:])
    length = float(np.linalg.norm(normal))
    return normal / length if length > 1e-6 else None


def _stored_range(ds: pydicom.Dataset) -> tuple[int, int] | None:
    try:
        bits = int(ds.get("BitsStored") or 0)
        signed = int(ds.get("PixelRepresentation") or 0) == 1
    except (TypeError, ValueError):
        return None
    if not 1 <= bits <= 32:
        return None
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def _greyscale(
    ds: pydicom.Dataset, stored: np.ndarray, index: int, photometric: str
) -> tuple[np.ndarray, tuple[float, float]]:
    """Modality values as float32 (MONOCHROME1 inverted) and their possible range."""
    values = pixels.modality_values(ds, stored, index)
    limits = _stored_range(ds) if stored.dtype.kind in "iu" else None
    if limits is not None:
        ends = pixels.modality_values(ds, np.array(limits, dtype=np.int64), index)
        low, high = float(np.min(ends)), float(np.max(ends))
    else:  # float pixel data: no declared range
        low, high = float(values.min()), float(values.max())
    if photometric == "MONOCHROME1":
        values = (high + low) - values
    return values.astype(np.float32), (low, high)


def _colour(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
    if stored.dtype == np.uint8:
        return stored
    bits = int(ds.get("BitsStored", 8) or 8)
    scaled = stored.astype(np.float64) * 255.0 / ((1 << bits) - 1)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _size(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]}" + (" colour" if len(shape) == 3 else "")


def _instance_name(sop_uid: str, number: int | None) -> str:
    label = f"instance {number}" if number is not None else "an instance"
    return f"{label} ({sop_uid or 'no SOP Instance UID'})"


def _reason(exc: Exception) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def load_series(candidate: SeriesCandidate, *, max_frames: int = 2000) -> SeriesVolume:
    """Read and decode every frame of ``candidate`` into one :class:`SeriesVolume`.

    Greyscale frames hold modality values (HU for CT) as float32, MONOCHROME1 inverted within
    the value range so that higher is brighter; colour frames are uint8 RGB. Frames are in
    spatial order when every frame has a position and all share one orientation, else in
    instance-number order. Instances or frames that cannot be read or decoded are left out
    with a warning naming them; where frames differ in size, the largest same-size group is
    kept.

    Raises :class:`SeriesLoadError` when the series has more than ``max_frames`` frames or no
    frame at all can be decoded.
    """
    declared = candidate.frames
    if declared > max_frames:
        raise SeriesLoadError(
            f"Series {candidate.series_uid} has {declared} frames, more than the {max_frames} "
            "that can be analysed at once."
        )
    loader = _Loader(max_frames, expected=declared)
    for ref in candidate.instances:
        name = _instance_name(ref.sop_instance_uid, ref.instance_number)
        try:
            ds = pixels.read_dataset(ref.path)
        except Exception as exc:  # pydicom raises many types on unreadable files
            loader.fail(f"The file of {name} cannot be read, so it was left out: {_reason(exc)}")
            continue
        loader.add(
            ds,
            sop_uid=ref.sop_instance_uid or str(ds.get("SOPInstanceUID", "") or ""),
            instance_number=ref.instance_number,
            header=ref.dicom_json,
        )
        del ds
    return loader.build(
        series_uid=candidate.series_uid,
        modality=candidate.modality,
        body_part=candidate.body_part,
        description=candidate.description,
    )


def volume_from_datasets(
    datasets: Sequence[pydicom.Dataset],
    *,
    series_uid: str | None = None,
    modality: str | None = None,
    body_part: str | None = None,
    description: str | None = None,
    max_frames: int = 2000,
) -> SeriesVolume:
    """:func:`load_series` for datasets already in memory (tests, tools).

    The series fields default to the first dataset's; ``headers`` are built from each dataset
    (pixel data left out).
    """
    from pacs_app.dicom.dicomjson import dataset_to_json

    loader = _Loader(max_frames, expected=sum(pixels.frame_count(ds) for ds in datasets))
    for ds in datasets:
        try:
            header = dataset_to_json(ds)
        except Exception:  # a malformed value: keep the frames, record no header
            header = {}
        for tag in ("7FE00010", "7FE00008", "7FE00009"):
            header.pop(tag, None)
        number = _json_int(header, "00200013")
        if number is None:
            try:
                number = int(ds.get("InstanceNumber"))
            except (TypeError, ValueError):
                number = None
        loader.add(
            ds,
            sop_uid=str(ds.get("SOPInstanceUID", "") or ""),
            instance_number=number,
            header=header,
        )
    first = datasets[0] if datasets else pydicom.Dataset()

    def text(value: str | None, keyword: str) -> str:
        return value if value is not None else str(first.get(keyword, "") or "")

    return loader.build(
        series_uid=text(series_uid, "SeriesInstanceUID"),
        modality=text(modality, "Modality"),
        body_part=text(body_part, "BodyPartExamined"),
        description=text(description, "SeriesDescription"),
    )
