"""Grayscale Softcopy Presentation States (PS3.3 A.33.1): how a report's key images were seen,
as DICOM objects of their study.

A radiologist marks a key image with the window it was read with and as it was turned
(rotated, mirrored). This PACS prints it so in the report's PDF; a presentation state says the
same to any PACS or viewer the study goes to, and the Key Object Selection Document filed at
signing points each key image at its presentation state (:mod:`pacs_app.dicom.kos`).

One presentation state carries one spatial transformation, one modality transform and one
Presentation LUT for all the images it references (PS3.3 C.11.6, C.10.6, C.11.1), so the key
images are grouped by those; each image keeps its own window (Softcopy VOI LUT) and displayed
area. An image is shown in it as this PACS renders it (:func:`pixels.shown_voi`): the reader's
window, else the image's VOI LUT, else its first window, else its min-max; with its own
overlay planes activated, and the measurements drawn on it as graphic annotations. Colour
images have no greyscale presentation state and are left out.

:func:`seen_in` reads back how a state (this PACS's or another's) shows an image, as far as
this PACS's viewer follows it: the turn, the window and what it draws on the image.

``tests/dicom/test_gsps.py`` checks each with DCMTK: ``dcmpschk`` reads it without error, and
``dcmp2pgm`` renders the image through it as this PACS prints the key image.

Example::

    shown = [shown_image(ds, ref, frame_index, window, orientation.Turn(90, True))]
    filing = Filing(study_header=..., study_instance_uid=..., creator="Rao^A",
                    description="Key images as seen", series_instance_uid=...,
                    series_number=5, when=utcnow())
    for state, images in presentation_states(shown, filing):
        kos.write(state, path)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydicom
from pydicom import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import format_number_as_ds

from pacs_app.core.errors import InvalidInput
from pacs_app.dicom import kos, pixels
from pacs_app.dicom.orientation import Turn

GSPS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
SERIES_DESCRIPTION = "Key image views"
CONTENT_LABEL = "KEY_IMAGE_VIEW"  # CS, at most 16 characters
OVERLAY_LAYER = "OVERLAYS"
MEASUREMENT_LAYER = "MEASUREMENTS"


@dataclass(frozen=True)
class Mark:
    """A measurement drawn on an image: a ``"length"`` (two points), an ``"roi"`` (the
    corners of its ellipse's bounding box) or an ``"angle"`` (three points, the vertex
    second), as x, y pairs in image pixels (pixel i spanning [i, i + 1), as DICOM's PIXEL
    units count), and the words drawn beside it. Read from a state made elsewhere, also a
    ``"polyline"`` of other lengths, and ``"text"`` alone at one point."""

    kind: str
    points: tuple[float, ...]
    label: str = ""

    def ends(self) -> tuple[float, float]:
        """Where its words go: past an ellipse's lower right, at a line's last point."""
        if self.kind == "roi":
            return max(self.points[0], self.points[2]), max(self.points[1], self.points[3])
        return self.points[-2], self.points[-1]

    def ellipse_axes(self) -> list[float]:
        """An ROI as DICOM's ELLIPSE: its major axis' ends, then its minor axis'."""
        x0, y0, x1, y1 = self.points
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        across = [cx - rx, cy, cx + rx, cy]
        down = [cx, cy - ry, cx, cy + ry]
        return across + down if rx >= ry else down + across


@dataclass(frozen=True)
class ShownImage:
    """A key image as it was seen: the image (``ref``) and its size, and the presentation
    (the modality transform, the VOI, MONOCHROME1 or not, the turn).

    ``modality`` is the frame's modality transform as attributes of the presentation state
    (empty where there is none); ``modality_key`` tells equal ones apart. ``voi`` is one
    Softcopy VOI LUT item without its image references."""

    ref: kos.KeyImageRef
    rows: int
    columns: int
    pixel_spacing: tuple[str, str] | None
    modality: Dataset
    modality_key: tuple
    voi: Dataset
    inverse: bool
    turn: Turn
    #: the groups (0x6000...) of the image's overlay planes on the frame, which the state
    #: activates (PS3.3 C.11.7: a state shows none it does not), as this PACS prints them
    overlays: tuple[int, ...] = ()
    #: the measurements drawn on it, shown as graphic annotations
    marks: tuple[Mark, ...] = ()

    @property
    def group(self) -> tuple:
        """What one presentation state must share."""
        return (self.turn.rotation, self.turn.flipped, self.modality_key, self.inverse)


def shown_image(
    ds: Dataset,
    ref: kos.KeyImageRef,
    index: int,
    window: pixels.Window | None,
    turn: Turn,
    marks: Sequence[Mark] = (),
) -> ShownImage | None:
    """Frame ``index`` of ``ds`` (the image ``ref`` names) as seen with ``window`` (``None``:
    as this PACS shows it by default) and ``turn``, with ``marks`` drawn on it; ``None`` for
    a colour image, which a greyscale presentation state cannot show, or an object that is
    no image. Raises
    :class:`pixels.PixelDataError` where the image's VOI or Modality LUT cannot be read, or
    its min-max needs pixels that cannot be decoded."""
    if pixels.is_color(ds) or not ds.get("Rows") or not ds.get("Columns"):
        return None
    modality, modality_key = _modality(ds, index, ref)
    voi = Dataset()
    shown = pixels.shown_voi(ds, index, window)
    if isinstance(shown, pixels.LookupTable):
        # the image's own first VOI LUT, as it wrote it: a reader of the state reads it as
        # it reads the image's
        voi.VOILUTSequence = [copy.deepcopy(ds.VOILUTSequence[0])]
    else:
        voi.WindowCenter = _ds(shown.center)
        voi.WindowWidth = _ds(shown.width)
        if shown.function != "LINEAR":
            voi.VOILUTFunction = shown.function
    spacing = _pixel_spacing(ds, index)
    return ShownImage(
        ref=ref,
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        pixel_spacing=spacing,
        modality=modality,
        modality_key=modality_key,
        voi=voi,
        inverse=str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1",
        turn=turn,
        overlays=tuple(sorted({plane.group for plane in pixels.overlays(ds, index)})),
        marks=tuple(marks),
    )


def _ds(value: float) -> str:
    """A number as a DS value (16 characters at most)."""
    return format_number_as_ds(float(value))


def _modality(ds: Dataset, index: int, ref: kos.KeyImageRef) -> tuple[Dataset, tuple]:
    """The Modality LUT module of a presentation state showing frame ``index`` of ``ds``: the
    same transform as :func:`pixels.modality_values` applies (PS3.3 C.11.1: required where the
    image has one, since the state's replaces the image's)."""
    found = pixels.modality_transform(ds, index)
    module = Dataset()
    if found is None:
        return module, ()
    if isinstance(found, pixels.LookupTable):
        module.ModalityLUTSequence = [copy.deepcopy(ds.ModalityLUTSequence[0])]
        return module, ("lut", ref.sop_instance_uid)
    kind = found.type or ("HU" if str(ds.get("Modality", "")) == "CT" else "US")
    module.RescaleIntercept = _ds(found.intercept)
    module.RescaleSlope = _ds(found.slope)
    module.RescaleType = kind
    return module, ("rescale", module.RescaleIntercept, module.RescaleSlope, kind)


def _pixel_spacing(ds: Dataset, index: int) -> tuple[str, str] | None:
    measures = pixels._functional_group(ds, index, "PixelMeasuresSequence")
    for source in (measures, ds):
        spacing = source.get("PixelSpacing") if source is not None else None
        if spacing is not None and len(spacing) == 2:
            try:
                if float(spacing[0]) > 0 and float(spacing[1]) > 0:
                    return _ds(spacing[0]), _ds(spacing[1])
            except (TypeError, ValueError):
                return None
    return None


@dataclass(frozen=True)
class Filing:
    """What the states of one filing share: the patient and study (``study_header``, DICOM
    JSON of one of the images, copied as the key object selection copies it), the author
    (a person's name), a description, their series and its number, and when."""

    study_header: dict[str, Any]
    study_instance_uid: str
    creator: str
    description: str
    series_instance_uid: str
    series_number: int
    when: datetime


def presentation_states(
    images: Sequence[ShownImage], filing: Filing
) -> list[tuple[Dataset, list[ShownImage]]]:
    """Grayscale Softcopy Presentation States showing ``images``, in one new series: one state
    for each group of images that share a turn, a modality transform and a Presentation LUT,
    each with the images it shows."""
    groups: dict[tuple, list[ShownImage]] = {}
    for image in images:
        groups.setdefault(image.group, []).append(image)
    return [
        (_state(shown, filing, number), shown)
        for number, shown in enumerate(groups.values(), start=1)
    ]


def _image_reference(image: ShownImage) -> Dataset:
    """The image a state shows, by class, instance and frame (its ``ref`` names no state)."""
    return kos.reference(image.ref, frame=True)


def _state(images: list[ShownImage], filing: Filing, instance_number: int) -> Dataset:
    first, when = images[0], filing.when.astimezone(UTC)
    ds = kos.copied_study(filing.study_header)
    ds.StudyInstanceUID = filing.study_instance_uid
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = GSPS_SOP_CLASS
    ds.SOPInstanceUID = generate_uid(prefix=None)
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    ds.TimezoneOffsetFromUTC = "+0000"
    # Presentation Series, General Equipment
    ds.Modality = "PR"
    ds.SeriesInstanceUID = filing.series_instance_uid
    ds.SeriesNumber = filing.series_number
    ds.SeriesDescription = SERIES_DESCRIPTION
    ds.Manufacturer = kos.MANUFACTURER
    # Presentation State Identification
    ds.InstanceNumber = instance_number
    ds.ContentLabel = CONTENT_LABEL
    ds.ContentDescription = filing.description[:64]
    ds.PresentationCreationDate = when.strftime("%Y%m%d")
    ds.PresentationCreationTime = when.strftime("%H%M%S")
    ds.ContentCreatorName = filing.creator
    # Presentation State Relationship: the images it shows, by series
    by_series: dict[str, Dataset] = {}
    for image in images:
        series = by_series.get(image.ref.series_instance_uid)
        if series is None:
            series = by_series[image.ref.series_instance_uid] = Dataset()
            series.SeriesInstanceUID = image.ref.series_instance_uid
            series.ReferencedImageSequence = []
        series.ReferencedImageSequence.append(_image_reference(image))
    ds.ReferencedSeriesSequence = list(by_series.values())
    # Displayed Area: each image whole, scaled to fit, its pixels' shape kept
    areas = []
    for image in images:
        area = Dataset()
        area.ReferencedImageSequence = [_image_reference(image)]
        area.DisplayedAreaTopLeftHandCorner = [1, 1]
        area.DisplayedAreaBottomRightHandCorner = [image.columns, image.rows]
        area.PresentationSizeMode = "SCALE TO FIT"
        if image.pixel_spacing:
            area.PresentationPixelSpacing = list(image.pixel_spacing)
        else:
            area.PresentationPixelAspectRatio = [1, 1]
        areas.append(area)
    ds.DisplayedAreaSelectionSequence = areas
    # Spatial Transformation (PS3.3 C.10.6): rotated clockwise, then mirrored. The reader's
    # turn is mirrored first, then rotated; a mirror reverses a rotation, so mirrored then
    # rotated by r is rotated by -r, then mirrored.
    turn = first.turn
    ds.ImageRotation = (360 - turn.rotation) % 360 if turn.flipped else turn.rotation
    ds.ImageHorizontalFlip = "Y" if turn.flipped else "N"
    # Modality LUT, Softcopy VOI LUT (each image its own), Softcopy Presentation LUT
    for element in first.modality:
        ds.add(copy.deepcopy(element))
    vois = []
    for image in images:
        voi = copy.deepcopy(image.voi)
        voi.ReferencedImageSequence = [_image_reference(image)]
        vois.append(voi)
    ds.SoftcopyVOILUTSequence = vois
    ds.PresentationLUTShape = "INVERSE" if first.inverse else "IDENTITY"
    # Graphic Layers: the images' overlay planes (Overlay Activation), then the measurements
    # drawn on them (Graphic Annotation)
    layers = []
    groups = sorted({group for image in images for group in image.overlays})
    if groups:
        layers.append(_layer(OVERLAY_LAYER, "The images' own overlay planes"))
        for group in groups:
            ds.add_new((group << 16) | 0x1001, "CS", OVERLAY_LAYER)  # Overlay Activation Layer
    annotations = [_annotation(image) for image in images if image.marks]
    if annotations:
        layers.append(_layer(MEASUREMENT_LAYER, "The measurements the reader drew"))
        ds.GraphicAnnotationSequence = annotations
    for order, layer in enumerate(layers, start=1):
        layer.GraphicLayerOrder = order
    if layers:
        ds.GraphicLayerSequence = layers
    return ds


def _layer(name: str, description: str) -> Dataset:
    layer = Dataset()
    layer.GraphicLayer, layer.GraphicLayerDescription = name, description
    return layer


def _annotation(image: ShownImage) -> Dataset:
    """The measurements on ``image`` as one Graphic Annotation item (PS3.3 C.10.5): each a
    POLYLINE (a length, an angle) or an ELLIPSE (an ROI), in image pixels, with its words
    beside it."""
    item = Dataset()
    item.ReferencedImageSequence = [_image_reference(image)]
    item.GraphicLayer = MEASUREMENT_LAYER
    graphics, texts = [], []
    for mark in image.marks:
        graphic = Dataset()
        graphic.GraphicAnnotationUnits = "PIXEL"
        graphic.GraphicDimensions = 2
        points = mark.ellipse_axes() if mark.kind == "roi" else list(mark.points)
        graphic.NumberOfGraphicPoints = len(points) // 2
        graphic.GraphicData = [float(v) for v in points]
        graphic.GraphicType = "ELLIPSE" if mark.kind == "roi" else "POLYLINE"
        graphic.GraphicFilled = "N"
        graphics.append(graphic)
        if mark.label:
            text = Dataset()
            text.AnchorPointAnnotationUnits = "PIXEL"
            text.UnformattedTextValue = mark.label[:1024]
            text.AnchorPoint = [float(v) for v in mark.ends()]
            text.AnchorPointVisibility = "N"
            texts.append(text)
    item.GraphicObjectSequence = graphics
    if texts:
        item.TextObjectSequence = texts
    return item


@dataclass(frozen=True)
class Seen:
    """How a presentation state shows one image, as far as this PACS's viewer follows it:
    its turn, its window (``None`` where the state shows the image through a VOI LUT, or
    names no VOI for it), and what it draws on it in image pixels (its graphic annotations'
    lines, ellipses and words; those placed on the display, not the image, are left out)."""

    turn: Turn
    window: pixels.Window | None
    marks: tuple[Mark, ...] = ()


def seen_in(state: Dataset, sop_instance_uid: str, frame: int = 1) -> Seen | None:
    """How the Grayscale Softcopy Presentation State ``state`` shows frame ``frame`` (1-based)
    of the image ``sop_instance_uid``; ``None`` where it does not show it. A rotation that is
    not a quarter is read as none, a window a viewer cannot apply as no window."""
    if not any(
        _names(ref, sop_instance_uid, frame)
        for series in state.get("ReferencedSeriesSequence") or []
        for ref in series.get("ReferencedImageSequence") or []
    ):
        return None
    flipped = str(state.get("ImageHorizontalFlip", "N")).strip().upper() == "Y"
    try:
        rotation = int(state.get("ImageRotation", 0) or 0)
        turn = Turn((360 - rotation) % 360 if flipped else rotation, flipped)
    except (TypeError, ValueError, InvalidInput):
        turn = Turn(0, flipped)
    window = None
    for voi in state.get("SoftcopyVOILUTSequence") or []:
        refs = voi.get("ReferencedImageSequence")
        if refs and not any(_names(ref, sop_instance_uid, frame) for ref in refs):
            continue
        window = _window(voi)
        break
    marks = [
        mark
        for annotation in state.get("GraphicAnnotationSequence") or []
        if _applies(annotation, sop_instance_uid, frame)
        for mark in _read_marks(annotation)
    ]
    return Seen(turn, window, tuple(marks))


def _applies(item: Dataset, sop_instance_uid: str, frame: int) -> bool:
    """Whether an item of a state applies to the frame: it names it, or names no image."""
    refs = item.get("ReferencedImageSequence")
    return not refs or any(_names(ref, sop_instance_uid, frame) for ref in refs)


def _read_marks(annotation: Dataset) -> list[Mark]:
    """A Graphic Annotation item's lines, ellipses and words placed on the image (PIXEL)."""
    marks = []
    for graphic in annotation.get("GraphicObjectSequence") or []:
        if str(graphic.get("GraphicAnnotationUnits", "")).upper() != "PIXEL":
            continue
        kind, data = str(graphic.get("GraphicType", "")).upper(), graphic.get("GraphicData")
        try:
            points = tuple(float(v) for v in (data or []))
        except (TypeError, ValueError):
            continue
        if len(points) < 4 or len(points) % 2:
            continue
        if kind == "ELLIPSE" and len(points) == 8:
            xs, ys = points[0::2], points[1::2]
            marks.append(Mark("roi", (min(xs), min(ys), max(xs), max(ys))))
        elif kind == "POLYLINE":
            named = {4: "length", 6: "angle"}.get(len(points), "polyline")
            marks.append(Mark(named, points))
    for text in annotation.get("TextObjectSequence") or []:
        anchor, words = text.get("AnchorPoint"), str(text.get("UnformattedTextValue", "") or "")
        if str(text.get("AnchorPointAnnotationUnits", "")).upper() != "PIXEL" or not anchor:
            continue
        try:
            marks.append(Mark("text", (float(anchor[0]), float(anchor[1])), words))
        except (TypeError, ValueError, IndexError):
            continue
    return marks


def _names(ref: Dataset, sop_instance_uid: str, frame: int) -> bool:
    """Whether an image reference names the frame (all of an image's frames where it lists
    none)."""
    if str(ref.get("ReferencedSOPInstanceUID", "")) != sop_instance_uid:
        return False
    frames = ref.get("ReferencedFrameNumber")
    if frames is None or frames == "":
        return True
    listed = frames if isinstance(frames, list | tuple | pydicom.multival.MultiValue) else [frames]
    try:
        return frame in {int(f) for f in listed}
    except (TypeError, ValueError):
        return False


def _window(voi: Dataset) -> pixels.Window | None:
    center, width = voi.get("WindowCenter"), voi.get("WindowWidth")
    if center is None or width is None or "VOILUTSequence" in voi:
        return None
    first = [v[0] if isinstance(v, pydicom.multival.MultiValue) else v for v in (center, width)]
    # a state's VOI replaces the image's: no function named is LINEAR, not the image's own
    function = str(voi.get("VOILUTFunction", "") or "").strip().upper() or "LINEAR"
    if function not in pixels.VOI_FUNCTIONS:
        return None
    try:
        return pixels.Window(float(first[0]), float(first[1]), function)
    except (TypeError, ValueError, InvalidInput):
        return None


__all__ = [
    "CONTENT_LABEL",
    "GSPS_SOP_CLASS",
    "Filing",
    "Mark",
    "Seen",
    "ShownImage",
    "presentation_states",
    "seen_in",
    "shown_image",
]
