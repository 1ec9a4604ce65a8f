"""The pixel pipeline: decode one frame, apply the Modality LUT, the VOI LUT or a window, and
MONOCHROME1 inversion, and encode it for display.

Decoding uses pydicom with the pylibjpeg plug-ins (JPEG baseline/extended/lossless, JPEG-LS,
JPEG 2000, RLE) and its own handlers for native, big-endian and deflated data. Colour images
come out as RGB (YBR converted, planar configuration handled). Enhanced multi-frame objects
take their rescale and window per frame from the functional groups.

``tests/dicom/test_fidelity.py`` compares every rendering with DCMTK's ``dcmj2pnm``.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array

from pacs_app.core.errors import InvalidInput, NotFound


class PixelDataError(InvalidInput):
    """The pixel data cannot be decoded (corrupt, or an unsupported encoding)."""

    code = "pixel_data_error"


#: The VOI LUT functions (PS3.3 C.11.2.1.2-3) a window is applied with.
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
#: Their names in the rendered resources' window parameter (PS3.18 8.3.5.1.3).
WINDOW_PARAM_NAMES = {"LINEAR": "linear", "LINEAR_EXACT": "linear-exact", "SIGMOID": "sigmoid"}


def window_param(center: float, width: float, function: str = "") -> str:
    """A window as the rendered resources' ``window`` parameter, ``center,width[,function]``
    (no function: the image's own), which ``services.dicomweb.parse_window`` reads."""
    name = WINDOW_PARAM_NAMES[function] if function else ""
    return f"{center:.8g},{width:.8g}" + (f",{name}" if name else "")


@dataclass(frozen=True)
class Window:
    """A window, and the VOI LUT function it is applied with: one of :data:`VOI_FUNCTIONS`,
    or ``""`` for the image's own (its VOI LUT Function, LINEAR where it names none)."""

    center: float
    width: float
    function: str = ""

    def __post_init__(self):
        if self.function and self.function not in VOI_FUNCTIONS:
            raise InvalidInput(f"No such VOI LUT function: {self.function!r}.")
        # PS3.3 C.11.2.1.2.1: LINEAR's width is at least 1; LINEAR_EXACT's and SIGMOID's
        # (C.11.2.1.3) above 0, as float images and fractional rescales need
        if not self.width > 0:
            raise InvalidInput("The window width must be above 0.")
        if self.function == "LINEAR" and self.width < 1:
            raise InvalidInput(
                "A LINEAR window's width must be at least 1 (a narrower one needs "
                "linear-exact or sigmoid)."
            )


def read_dataset(path: str | Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, force=True)


def frame_count(ds: pydicom.Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


def _check_frame(ds: pydicom.Dataset, index: int) -> int:
    """The instance's number of frames; :class:`NotFound` where ``index`` (0-based) is none
    of them."""
    frames = frame_count(ds)
    if not 0 <= index < frames:
        raise NotFound(f"Frame {index + 1} does not exist: the instance has {frames} frame(s).")
    return frames


def is_color(ds: pydicom.Dataset) -> bool:
    return int(ds.get("SamplesPerPixel", 1) or 1) > 1 or str(
        ds.get("PhotometricInterpretation", "")
    ).startswith("PALETTE")


def _functional_group(ds: pydicom.Dataset, index: int, sequence: str) -> pydicom.Dataset | None:
    """The item of ``sequence`` for frame ``index``: per-frame first, then shared."""
    for groups, item_index in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        seq = ds.get(groups)
        if seq and len(seq) > item_index:
            inner = seq[item_index].get(sequence)
            if inner:
                return inner[0]
    return None


def decode_frame(ds: pydicom.Dataset, index: int = 0) -> np.ndarray:
    """The stored values of frame ``index`` (0-based); RGB (h, w, 3) for colour images.

    Raises :class:`NotFound` for a frame out of range and :class:`PixelDataError` when the
    pixel data cannot be decoded.
    """
    _check_frame(ds, index)
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise PixelDataError("The instance has no pixel data (it is not an image).")
    if int(ds.get("BitsAllocated") or 0) == 1:
        # pydicom 3.0.2 cannot cut out some single-bit frames that start inside a byte (of
        # 3 x 5 bits, the second on: "cannot reshape array"); native ones are unpacked here
        cut = stored_frame(ds, index)
        if cut is not None and cut[1] == pydicom.uid.ExplicitVRLittleEndian:
            shape = (int(ds.Rows), int(ds.Columns))
            bits = np.unpackbits(np.frombuffer(cut[0], np.uint8), bitorder="little")
            return bits[: shape[0] * shape[1]].reshape(shape)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            arr = pixel_array(ds, index=index, raw=False)
    except Exception as exc:  # decoders raise many types on corrupt or unsupported data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = syntax.name if syntax is not None and hasattr(syntax, "name") else "unknown"
        raise PixelDataError(f"The pixel data cannot be decoded ({name}): {exc}".rstrip()) from exc
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if photometric.startswith("PALETTE"):
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8) if arr.max() > 255 else arr.astype(np.uint8)
    return arr


@dataclass(frozen=True)
class Rescale:
    """A linear Modality LUT: ``slope`` and ``intercept``, and the Rescale Type the header
    names (``""`` where none)."""

    slope: float
    intercept: float
    type: str = ""


def modality_transform(ds: pydicom.Dataset, index: int = 0) -> Rescale | LookupTable | None:
    """How frame ``index``'s stored values become modality values: the frame's Pixel Value
    Transformation (enhanced objects), else the Modality LUT Sequence, else the header's
    rescale; ``None`` where there is none (the stored values are the modality values)."""
    transform = _functional_group(ds, index, "PixelValueTransformationSequence")
    if transform is not None and "RescaleSlope" in transform:
        return Rescale(
            float(transform.get("RescaleSlope", 1) or 1),
            float(transform.get("RescaleIntercept", 0) or 0),
            str(transform.get("RescaleType", "") or ""),
        )
    table = LookupTable.of(ds, "ModalityLUTSequence")
    if table is not None:
        return table
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is None or intercept is None:
        return None
    return Rescale(float(slope), float(intercept), str(ds.get("RescaleType", "") or ""))


def modality_values(ds: pydicom.Dataset, stored: np.ndarray, index: int = 0) -> np.ndarray:
    """Stored values to modality values (rescale slope/intercept or Modality LUT Sequence)."""
    transform = modality_transform(ds, index)
    if transform is None:
        return stored.astype(np.float64)
    if isinstance(transform, LookupTable):
        return transform.apply(stored).astype(np.float64)
    return stored.astype(np.float64) * transform.slope + transform.intercept


@dataclass(frozen=True)
class LookupTable:
    """A Modality or VOI LUT (PS3.3 C.11.1.1 and C.11.2.1.1): ``entries`` map the input values
    ``first``, ``first + 1``, ...; inputs below ``first`` take the first entry, inputs past the
    last the last one. An entry has ``bits`` bits (the VOI LUT's output range is
    0 to 2**bits - 1).

    pydicom's own application (3.0.2) indexes an 8-bit VOI LUT with an 8-bit array, so that
    the inputs past 255 of a LUT with more entries wrap around (256 shows as the first entry):
    this one is used instead, and the viewer mirrors it (``lutSpec`` in ``assets/viewer.js``).
    """

    first: int
    bits: int
    entries: np.ndarray

    @classmethod
    def of(cls, ds: pydicom.Dataset, sequence: str, item: int = 0) -> LookupTable | None:
        """The ``item``-th LUT of ``sequence`` (ModalityLUTSequence or VOILUTSequence) in
        ``ds``; ``None`` where it has none. :class:`PixelDataError` for a LUT that cannot be
        read (its descriptor or data missing or malformed)."""
        seq = ds.get(sequence)
        if not seq or len(seq) <= item:
            return None
        lut = seq[item]
        descriptor = lut.get("LUTDescriptor")
        if descriptor is None or "LUTData" not in lut:
            raise PixelDataError(f"The {sequence} has no LUT Descriptor or no LUT Data.")
        try:
            count, first, bits = (int(v) for v in list(descriptor)[:3])
        except (TypeError, ValueError):
            raise PixelDataError(f"The {sequence}'s LUT Descriptor is malformed.") from None
        count = count or 65536
        if first >= 32768 and int(ds.get("PixelRepresentation", 0) or 0) == 1:
            first -= 65536  # written as US where the values are signed
        if not 1 <= bits <= 16:
            raise PixelDataError(f"The {sequence}'s entries have {bits} bits (1 to 16 allowed).")
        entries = _lut_entries(lut["LUTData"].value, count, bits, ds)
        if entries.size == 0:
            raise PixelDataError(f"The {sequence}'s LUT Data is empty.")
        return cls(first, bits, entries)

    def apply(self, values: np.ndarray) -> np.ndarray:
        """The entries for ``values`` (integers, or modality values rounded half up)."""
        if values.dtype.kind in "iu":
            index = values.astype(np.int64) - self.first
        else:
            index = np.floor(values.astype(np.float64) + 0.5) - self.first
        index = np.clip(index, 0, self.entries.size - 1).astype(np.intp)
        return self.entries[index]


def _lut_entries(data, count: int, bits: int, ds: pydicom.Dataset) -> np.ndarray:
    """LUT Data as ``count`` entries of ``bits`` bits: a list of numbers (VR US) or bytes (OW)
    of 16-bit words in the file's byte order, or of one byte an entry for an 8-bit LUT
    whose data is that long (two entries packed in each word)."""
    if isinstance(data, bytes | bytearray):
        if bits <= 8 and len(data) in (count, count + 1):
            entries = np.frombuffer(data, np.uint8)[:count].astype(np.int64)
        else:
            little = ds.is_little_endian if ds.is_little_endian is not None else True
            usable = len(data) // 2 * 2
            entries = np.frombuffer(data[:usable], "<u2" if little else ">u2").astype(np.int64)
    elif data is None:
        entries = np.zeros(0, np.int64)
    else:
        values = [data] if isinstance(data, int) else list(data)
        entries = np.asarray(values, dtype=np.int64) & 0xFFFF
    return entries[:count] & ((1 << bits) - 1)


def header_window(ds: pydicom.Dataset, index: int = 0) -> Window | None:
    """The first window of the header (per frame for enhanced objects), if any, with the
    image's VOI LUT function."""
    source = _functional_group(ds, index, "FrameVOILUTSequence") or ds
    center, width = source.get("WindowCenter"), source.get("WindowWidth")
    if center is None or width is None:
        return None
    try:
        center = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        width = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
    except (TypeError, ValueError):
        return None
    try:  # a width the function does not allow: no window
        return Window(center, width, voi_function(ds, index))
    except InvalidInput:
        return None


def voi_function(ds: pydicom.Dataset, index: int = 0) -> str:
    """The VOI LUT Function (0028,1056) the image's windows are applied with (per frame for
    enhanced objects): LINEAR where it names none, or one this code does not know."""
    source = _functional_group(ds, index, "FrameVOILUTSequence") or ds
    named = str(source.get("VOILUTFunction", "") or ds.get("VOILUTFunction", "") or "")
    named = named.strip().upper()
    return named if named in VOI_FUNCTIONS else "LINEAR"


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Windowing to 0..255 by the window's VOI LUT function (LINEAR where it is the image's
    own, ``""``: :func:`render` fills that in): PS3.3 C.11.2.1.2.1 (LINEAR), C.11.2.1.3.1
    (SIGMOID) and C.11.2.1.3.2 (LINEAR_EXACT)."""
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        with np.errstate(over="ignore"):  # far below the centre: exp overflows to inf, so 0
            out = 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    elif window.function == "LINEAR_EXACT":
        out = np.clip(((values - c) / w + 0.5) * 255.0, 0.0, 255.0)
    else:
        low = c - 0.5 - (w - 1) / 2
        high = c - 0.5 + (w - 1) / 2
        out = (
            ((values - (c - 0.5)) / (w - 1) + 0.5) * 255.0
            if w > 1
            else np.where(values > c - 0.5, 255.0, 0.0)
        )
        out = np.where(values <= low, 0.0, np.where(values > high, 255.0, out))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def min_max_window(values: np.ndarray) -> Window:
    """The window from the lowest of ``values`` (modality values) to the highest: by the
    image's own function where they are whole numbers, else LINEAR_EXACT, whose centre and
    width are the values' own (LINEAR's formula would say a width of 1.003 for a float map of
    values between 0 and 0.003). The viewer mirrors it (``minMaxWindow`` in
    ``assets/viewer.js``)."""
    lo, hi = float(values.min()), float(values.max())
    if np.array_equal(values, np.floor(values)):
        return Window(center=(lo + hi) / 2 + 0.5, width=max(1.0, hi - lo + 1))
    return Window(center=(lo + hi) / 2, width=hi - lo or 1.0, function="LINEAR_EXACT")


def render(
    ds: pydicom.Dataset, index: int = 0, window: Window | None = None, *, with_overlays: bool = True
) -> np.ndarray:
    """Frame ``index`` as display pixels: uint8 (h, w) grey or (h, w, 3) RGB.

    Grey: Modality LUT, then ``window`` if given, else the header's VOI LUT Sequence or first
    window, else the frame's min-max; MONOCHROME1 is inverted so that dark means low. The
    frame's overlay planes (:func:`overlays`) are drawn over it in white, unless
    ``with_overlays`` is false.
    """
    display = _render_pixels(ds, index, window)
    return burn_overlays(display, overlays(ds, index)) if with_overlays else display


def _render_pixels(ds: pydicom.Dataset, index: int, window: Window | None) -> np.ndarray:
    stored = decode_frame(ds, index)
    if is_color(ds):
        if stored.dtype != np.uint8:
            bits = int(ds.get("BitsStored", 8) or 8)
            stored = (stored.astype(np.float64) * 255.0 / ((1 << bits) - 1)).round()
        return stored.astype(np.uint8)
    voi = shown_voi(ds, index, window, stored)
    if stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2:
        # computed once per distinct stored value, not per pixel: the same result
        lo, hi = int(stored.min()), int(stored.max())
        domain = np.arange(lo, hi + 1, dtype=np.int64).astype(stored.dtype)
        return np.take(_display(ds, index, domain, voi), stored.astype(np.int32) - lo)
    return _display(ds, index, stored, voi)


def shown_voi(
    ds: pydicom.Dataset,
    index: int = 0,
    window: Window | None = None,
    stored: np.ndarray | None = None,
) -> Window | LookupTable:
    """What greyscale frame ``index`` is shown through, as :func:`render` shows it: ``window``
    if given, else the header's VOI LUT Sequence (:func:`voi_table`), else its first window,
    else the frame's min-max (of ``stored``, its decoded values, decoded here if not given).
    A window comes with the image's VOI LUT function where it names none."""
    if window is None:
        table = voi_table(ds, index)
        if table is not None:
            return table
        window = header_window(ds, index)
    if window is None:
        values = decode_frame(ds, index) if stored is None else stored
        window = min_max_window(modality_values(ds, values, index))
    return _with_function(window, ds, index)


def _display(
    ds: pydicom.Dataset, index: int, stored: np.ndarray, voi: Window | LookupTable
) -> np.ndarray:
    """Stored values to display values: the Modality LUT, then ``voi`` (a VOI LUT or a
    window); MONOCHROME1 inverted."""
    values = modality_values(ds, stored, index)
    if isinstance(voi, LookupTable):
        display = voi_display(voi, values)
    else:
        display = apply_window(values, voi)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        display = 255 - display
    return display


def voi_table(ds: pydicom.Dataset, index: int = 0) -> LookupTable | None:
    """The VOI LUT that frame ``index`` shows through where no window is asked for: the
    first of the VOI LUT Sequence, preferred to the header's windows (as pydicom and DCMTK's
    ``dcmj2pnm +Wl 1`` apply it), unless the frame has a VOI group of its own (enhanced
    objects). ``None`` where there is none."""
    if _functional_group(ds, index, "FrameVOILUTSequence"):
        return None
    return LookupTable.of(ds, "VOILUTSequence")


def voi_display(table: LookupTable, values: np.ndarray) -> np.ndarray:
    """Modality values through a VOI LUT to 0..255: its output range (0 to 2**bits - 1)
    scaled, rounded half up as the viewer rounds."""
    scaled = table.apply(values).astype(np.float64) * 255.0 / ((1 << table.bits) - 1)
    return np.clip(np.floor(scaled + 0.5), 0, 255).astype(np.uint8)


def _with_function(window: Window, ds: pydicom.Dataset, index: int) -> Window:
    """``window`` with the image's VOI LUT function where it names none."""
    return window if window.function else replace(window, function=voi_function(ds, index))


def encode(image: np.ndarray, fmt: str = "png", quality: int = 90) -> bytes:
    """PNG (lossless) or JPEG bytes of a rendered image."""
    if fmt != "jpeg":
        return _png(image)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(image: np.ndarray) -> bytes:
    """An 8-bit grey or RGB PNG, written directly: rows without a filter, deflated at level 1.

    Pillow's encoder tries every row filter to pick the best, which costs more than the
    compression itself; rendered medical images, with their large flat background, come out
    as small without filtering (a 512x512 CT: 54 KB, 1.4 ms, against Pillow's 59 KB, 3.2 ms).
    """
    image = np.ascontiguousarray(image, dtype=np.uint8)
    height, width = image.shape[:2]
    colour = image.ndim == 3
    rows = np.empty((height, 1 + width * (3 if colour else 1)), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    rows[:, 1:] = image.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if colour else 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.data, 1))
        + _png_chunk(b"IEND", b"")
    )


def stored_frame(ds: pydicom.Dataset, index: int = 0) -> tuple[bytes, str] | None:
    """Frame ``index`` as stored, with its transfer syntax: for compressed pixel data, the
    frame's encoded bytes (its fragments joined) in the stored syntax; for native pixel data,
    its stored values in little-endian byte order (Explicit VR Little Endian: a frame has no
    VR), planes, subsampling and palette indexes as they are. Either way the frame is what the
    instance's metadata (Photometric Interpretation, Planar Configuration, Samples per Pixel)
    describes, which a decoded frame (:func:`raw_frame`) is not for colour images.

    Single-bit frames are packed from the start of a byte (:func:`_bit_run`).

    ``None`` where the frame cannot be cut out as stored (no transfer syntax known, float
    pixel data, a length short of the frame, a malformed fragment sequence);
    :class:`NotFound` for a frame out of range.
    """
    frames = _check_frame(ds, index)
    value = ds.get("PixelData")
    meta = getattr(ds, "file_meta", None)
    syntax = pydicom.uid.UID(str(getattr(meta, "TransferSyntaxUID", "") or ""))
    if value is None or not syntax:
        return None  # without file meta information, how the pixels are encoded is a guess
    if syntax.is_compressed:
        offsets = None
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        try:
            return get_frame(value, index, extended_offsets=offsets, number_of_frames=frames), str(
                syntax
            )
        except Exception:  # a malformed fragment sequence: the decoded form may still come
            return None
    bits = int(ds.get("BitsAllocated") or 0)
    samples = int(ds.get("SamplesPerPixel") or 1)
    values = int(ds.get("Rows") or 0) * int(ds.get("Columns") or 0) * samples
    if str(ds.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        values = values * 2 // 3  # two chrominance values per two pixels (PS3.3 C.7.6.3.1.2)
    if bits not in (1, 8, 16, 32, 64) or (values * bits % 8 and bits != 1):
        return None
    if syntax == pydicom.uid.ExplicitVRBigEndian:
        # big endian words: of the sample's size, or pairs of 8-bit samples in an OW value
        word = bits // 8 if bits > 8 else 2 if ds["PixelData"].VR == "OW" else 1
        if word > 1:
            whole = len(value) // word * word
            value = np.frombuffer(value[:whole], dtype=f">u{word}").astype(f"<u{word}").tobytes()
    if bits == 1:
        data = _bit_run(value, values * index, values)
        return None if data is None else (data, pydicom.uid.ExplicitVRLittleEndian)
    size = values * bits // 8
    data = value[size * index : size * (index + 1)]
    if len(data) != size:
        return None
    return bytes(data), pydicom.uid.ExplicitVRLittleEndian


def _bit_run(value: bytes, start: int, count: int) -> bytes | None:
    """``count`` single-bit values from bit ``start`` of ``value``, packed again from the start
    of a byte, the first value in the least significant bit (PS3.5 8.1.1: the frames of
    single-bit pixel data follow each other bit by bit, so a frame may start inside a byte,
    and a client takes each frame it is sent as starting on one). ``None`` where ``value``
    is short."""
    first, end = start // 8, (start + count + 7) // 8
    if len(value) < end:
        return None
    bits = np.unpackbits(np.frombuffer(value, np.uint8, end - first, first), bitorder="little")
    return np.packbits(bits[start % 8 : start % 8 + count], bitorder="little").tobytes()


def raw_frame(ds: pydicom.Dataset, index: int = 0) -> bytes:
    """Frame ``index`` as uncompressed little-endian stored values (WADO-RS frames)."""
    arr = decode_frame(ds, index)
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian):
        arr = arr.byteswap().view(arr.dtype.newbyteorder("<"))
    return np.ascontiguousarray(arr).tobytes()


# --- overlay planes (PS3.3 C.9.2, C.9.3) ------------------------------------------------------

OVERLAY_GROUPS = range(0x6000, 0x6020, 2)


@dataclass(frozen=True)
class OverlayPlane:
    """One overlay plane as it applies to one image frame.

    ``bits``: a (rows, columns) boolean array; ``origin``: the image row and column (1-based)
    of its top left bit, which may lie outside the image.
    """

    group: int
    kind: str  # "G" graphics or "R" region of interest
    label: str
    description: str
    origin: tuple[int, int]
    bits: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.bits.shape[0])

    @property
    def columns(self) -> int:
        return int(self.bits.shape[1])


def _overlay_text(ds: pydicom.Dataset, tag: int) -> str:
    value = ds.get(tag)
    return str(value.value).strip() if value is not None and value.value is not None else ""


def _overlay_int(ds: pydicom.Dataset, tag: int, default: int | None) -> int | None:
    element = ds.get(tag)
    if element is None or element.value in (None, "", b""):
        return default
    value = element.value
    if isinstance(value, pydicom.multival.MultiValue | list):
        value = value[0] if value else default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def overlays(ds: pydicom.Dataset, index: int = 0) -> list[OverlayPlane]:
    """The overlay planes of ``ds`` that apply to frame ``index`` (0-based), in group order.

    Planes stored in (60xx,3000) Overlay Data are read, per frame for multi-frame overlays
    (Number of Frames in Overlay, Image Frame Origin); a plane without them applies to every
    frame. Overlays embedded in the high bits of the pixel data (retired in 2004) and planes
    whose attributes are missing or inconsistent are left out: a damaged overlay must not keep
    the image itself from showing.
    """
    planes = []
    for group in OVERLAY_GROUPS:
        data = ds.get((group, 0x3000))
        if data is None or not data.value:
            continue
        rows = _overlay_int(ds, (group << 16) | 0x0010, None)
        columns = _overlay_int(ds, (group << 16) | 0x0011, None)
        bits_allocated = _overlay_int(ds, (group << 16) | 0x0100, 1)
        bit_position = _overlay_int(ds, (group << 16) | 0x0102, 0)
        if not rows or not columns or rows < 0 or columns < 0:
            continue
        if bits_allocated != 1 or bit_position != 0:
            continue
        frames = _overlay_int(ds, (group << 16) | 0x0015, None)
        first = _overlay_int(ds, (group << 16) | 0x0051, 1) or 1
        if frames is None:
            offset = 0  # one plane for every frame
        elif first - 1 <= index < first - 1 + frames:
            offset = index - (first - 1)
        else:
            continue
        raw = bytes(data.value)
        if data.VR == "OW" and ds.original_encoding[1] is False:
            # 16-bit words, most significant byte first: bit 0 of each word is in its 2nd byte
            raw = np.frombuffer(raw[: len(raw) // 2 * 2], dtype=">u2").astype("<u2").tobytes()
        size = rows * columns
        start = offset * size
        if len(raw) * 8 < start + size:
            continue
        # only the bytes that hold this frame's bits (a multi-frame overlay holds them all)
        first_byte = start // 8
        chunk = np.frombuffer(raw[first_byte : (start + size + 7) // 8], dtype=np.uint8)
        skip = start - first_byte * 8
        frame_bits = np.unpackbits(chunk, bitorder="little")[skip : skip + size]
        origin = ds.get((group << 16) | 0x0050)
        try:
            top, left = (int(v) for v in origin.value) if origin is not None else (1, 1)
        except (TypeError, ValueError):
            top, left = 1, 1
        planes.append(
            OverlayPlane(
                group=group,
                kind=(_overlay_text(ds, (group << 16) | 0x0040)[:1] or "G").upper(),
                label=_overlay_text(ds, (group << 16) | 0x1500),
                description=_overlay_text(ds, (group << 16) | 0x0022),
                origin=(top, left),
                bits=frame_bits.reshape(rows, columns).astype(bool),
            )
        )
    return planes


def burn_overlays(image: np.ndarray, planes: list[OverlayPlane]) -> np.ndarray:
    """``image`` (display pixels) with the planes' set bits drawn in white, clipped to it."""
    if not planes:
        return image
    out = image.copy()
    height, width = image.shape[:2]
    for plane in planes:
        top, left = plane.origin[0] - 1, plane.origin[1] - 1
        y0, x0 = max(0, top), max(0, left)
        y1, x1 = min(height, top + plane.rows), min(width, left + plane.columns)
        if y0 >= y1 or x0 >= x1:
            continue
        mask = plane.bits[y0 - top : y1 - top, x0 - left : x1 - left]
        out[y0:y1, x0:x1][mask] = 255
    return out
