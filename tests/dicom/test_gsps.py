"""Presentation states of key images (``pacs_app.dicom.gsps``), checked by DCMTK: ``dcmpschk``
reads each without error, and ``dcmp2pgm`` renders the image through it as this PACS prints
the key image (its window and turn: ``orientation.Turn.pixels`` of ``pixels.render``).

The two renderers round a window's edges differently, so a level may differ by one; the
geometry (each turn) must be exact, which a wrong rotation or mirror would not be.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from pacs_app.dicom import gsps, kos, pixels
from pacs_app.dicom.orientation import Turn
from tests.dcmtk import required
from tests.dicom_factory import make_cr, make_ct, make_float_map, with_lut

TESTDATA = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "dicom"
WHEN = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)
TURNS = [(0, False), (90, False), (180, False), (270, False), (0, True), (90, True), (270, True)]


def _ref(ds: pydicom.Dataset, frame: int = 1) -> kos.KeyImageRef:
    return kos.KeyImageRef(
        ds.SeriesInstanceUID,
        ds.SOPClassUID,
        ds.SOPInstanceUID,
        frame=frame,
        multiframe=pixels.frame_count(ds) > 1,
    )


def _states(*shown: gsps.ShownImage | None, header=None) -> list[tuple[pydicom.Dataset, list]]:
    """The states of ``shown``, with the patient and study of ``header`` (a dataset)."""
    header = header or pydicom.examples.ct
    return gsps.presentation_states(
        [image for image in shown if image is not None],
        gsps.Filing(
            study_header=header.to_json_dict(bulk_data_threshold=64, bulk_data_element_handler=str),
            study_instance_uid=header.StudyInstanceUID,
            creator="Rao^Anita",
            description="Key images as seen",
            series_instance_uid="1.2.3.4",
            series_number=7,
            when=WHEN,
        ),
    )


def _state_of(ds, window=None, turn=Turn(), frame=1) -> pydicom.Dataset:
    shown = gsps.shown_image(ds, _ref(ds, frame), frame - 1, window, turn)
    [(state, _)] = _states(shown, header=ds)
    return state


def _checked(state: pydicom.Dataset, folder: Path) -> Path:
    """``state`` written, after DCMTK's check of presentation states passes it."""
    (dcmpschk,) = required("dcmpschk")
    path = folder / f"state-{state.SOPInstanceUID[-12:]}.dcm"
    kos.write(state, path)
    done = subprocess.run([dcmpschk, "-v", str(path)], capture_output=True, text=True, timeout=60)
    report = done.stdout + done.stderr  # its log goes to either, by version
    assert "Test passed." in report and "failed" not in report, report
    return path


def _dcmtk_render(image: Path, state: Path, folder: Path, frame: int = 1) -> np.ndarray:
    """DCMTK's rendering of ``image`` through ``state``, with the overlay planes the state
    activates drawn white. ``dcmp2pgm`` leaves those to the application (a viewer draws
    them over the image), and writes each, turned as the image is, as a bitmap of its size
    when it dumps the state (``-v``): they are drawn here."""
    (dcmp2pgm,) = required("dcmp2pgm")
    out = folder / "rendered.pgm"
    for old in folder.glob("ovl_*.pgm"):
        old.unlink()
    done = subprocess.run(
        [dcmp2pgm, "-v", "-p", str(state), "-f", str(frame), str(image), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
    )
    assert done.returncode == 0, done.stderr
    rendered = np.asarray(Image.open(out)).astype(np.int32)
    for plane in sorted(folder.glob("ovl_*.pgm")):
        bits = np.asarray(Image.open(plane)) > 0
        assert bits.shape == rendered.shape, (plane.name, bits.shape)
        rendered[bits] = 255
    return rendered


def _as_printed(ds: pydicom.Dataset, window, turn: Turn, frame: int = 1) -> np.ndarray:
    """As the report's PDF prints the key image (its overlay planes burnt in)."""
    return turn.pixels(pixels.render(ds, frame - 1, window)).astype(np.int32)


def _same(dcmtk: np.ndarray, ours: np.ndarray) -> None:
    assert dcmtk.shape == ours.shape
    assert int(np.abs(dcmtk - ours).max()) <= 1


@pytest.mark.parametrize(("rotation", "flipped"), TURNS)
def test_each_turn_renders_in_dcmtk_as_printed(tmp_path, rotation, flipped):
    # 128 x 96: a quarter turn shows whether rows and columns were swapped, and CT_small's
    # head is not symmetric, so a wrong mirror shows too
    path = make_ct(tmp_path / "ct.dcm", rows=96)
    ds = pydicom.dcmread(path)
    window, turn = pixels.Window(40, 400), Turn(rotation, flipped)
    state = _state_of(ds, window, turn)
    # PS3.3 C.10.6: rotated first, then mirrored; the reader's turn mirrors first
    assert state.ImageRotation == ((360 - rotation) % 360 if flipped else rotation)
    assert state.ImageHorizontalFlip == ("Y" if flipped else "N")
    rendered = _dcmtk_render(path, _checked(state, tmp_path), tmp_path)
    _same(rendered, _as_printed(ds, window, turn))


def test_a_wrong_turn_is_told_apart(tmp_path):
    """The comparison can fail: the state of a plain quarter turn is not the print of the
    mirrored one."""
    path = make_ct(tmp_path / "ct.dcm", rows=96)
    ds = pydicom.dcmread(path)
    window = pixels.Window(40, 400)
    rendered = _dcmtk_render(path, _checked(_state_of(ds, window, Turn(90)), tmp_path), tmp_path)
    mirrored = _as_printed(ds, window, Turn(90, True))
    assert rendered.shape == mirrored.shape
    assert int(np.abs(rendered - mirrored).max()) > 100


def test_the_state_holds_what_its_reader_needs(tmp_path):
    ds = pydicom.dcmread(make_ct(tmp_path / "ct.dcm", rows=96))
    state = _state_of(ds, pixels.Window(40, 400), Turn(90, True))
    assert state.SOPClassUID == gsps.GSPS_SOP_CLASS and state.Modality == "PR"
    assert (state.SeriesInstanceUID, state.SeriesNumber, state.InstanceNumber) == ("1.2.3.4", 7, 1)
    assert (state.ContentLabel, str(state.ContentCreatorName)) == ("KEY_IMAGE_VIEW", "Rao^Anita")
    assert (state.PresentationCreationDate, state.PresentationCreationTime) == (
        "20261208",
        "093000",
    )
    (series,) = state.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == ds.SeriesInstanceUID
    assert series.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    (area,) = state.DisplayedAreaSelectionSequence
    assert (
        list(area.DisplayedAreaTopLeftHandCorner),
        list(area.DisplayedAreaBottomRightHandCorner),
    ) == (
        [1, 1],
        [128, 96],
    )
    assert [float(v) for v in area.PresentationPixelSpacing] == [float(v) for v in ds.PixelSpacing]
    (voi,) = state.SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth), "VOILUTFunction" in voi) == (
        40.0,
        400.0,
        False,
    )
    assert (state.RescaleSlope, state.RescaleIntercept, state.RescaleType) == (1, -1024, "HU")
    assert state.PresentationLUTShape == "IDENTITY"


def test_monochrome1_is_shown_inverse(tmp_path):
    path = tmp_path / "cr.dcm"
    ds = make_cr(path, photometric="MONOCHROME1")
    window = pixels.Window(2000, 1500)
    state = _state_of(ds, window, Turn(270))
    assert state.PresentationLUTShape == "INVERSE"
    assert "RescaleSlope" not in state and "ModalityLUTSequence" not in state
    rendered = _dcmtk_render(path, _checked(state, tmp_path), tmp_path)
    _same(rendered, _as_printed(ds, window, Turn(270)))


def test_the_images_own_luts_go_with_it(tmp_path):
    """Seen without a window of the reader's: through the image's VOI LUT, under its Modality
    LUT, both copied as the image wrote them."""
    path = tmp_path / "cr.dcm"
    ds = make_cr(path)
    with_lut(ds, "ModalityLUTSequence", [v // 2 for v in range(4096)], bits=16)
    with_lut(ds, "VOILUTSequence", [min(255, v // 4) for v in range(2048)], bits=8)
    ds.save_as(path, enforce_file_format=True)
    state = _state_of(ds, None, Turn(90, True))
    assert state.ModalityLUTSequence[0].LUTDescriptor == ds.ModalityLUTSequence[0].LUTDescriptor
    (voi,) = state.SoftcopyVOILUTSequence
    assert "WindowCenter" not in voi and len(voi.VOILUTSequence) == 1
    rendered = _dcmtk_render(path, _checked(state, tmp_path), tmp_path)
    _same(rendered, _as_printed(ds, None, Turn(90, True)))


def test_a_float_map_keeps_its_window_function(tmp_path):
    make_float_map(tmp_path / "map.dcm")
    ds = pydicom.dcmread(tmp_path / "map.dcm")
    shown = pixels.Window(0.5, 0.25, "LINEAR_EXACT")
    (voi,) = _state_of(ds, shown).SoftcopyVOILUTSequence
    assert (float(voi.WindowCenter), float(voi.WindowWidth), voi.VOILUTFunction) == (
        0.5,
        0.25,
        "LINEAR_EXACT",
    )


@pytest.mark.parametrize(
    ("name", "frame", "window"),
    [
        ("clinical/DX_thorax_highdicom.dcm", 1, None),  # MONOCHROME1, its own window
        ("clinical/CT_enhanced_multiframe_2f.dcm", 2, pixels.Window(40, 350)),  # per frame
    ],
)
def test_real_images(tmp_path, name, frame, window):
    if not (TESTDATA / name).exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    ds = pydicom.dcmread(TESTDATA / name)
    turn = Turn(90, True)
    state = _state_of(ds, window, turn, frame)
    if ds.get("NumberOfFrames", 1) > 1:
        shown = state.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
        assert shown.ReferencedFrameNumber == frame
    rendered = _dcmtk_render(TESTDATA / name, _checked(state, tmp_path), tmp_path, frame)
    _same(rendered, _as_printed(ds, window, turn, frame))


def test_the_images_overlay_planes_are_shown(tmp_path):
    """A state shows only the overlay planes it activates (PS3.3 C.11.7): it activates the
    image's, as the PDF prints them (a Siemens MR's, drawn white by both)."""
    name = "clinical/MR_abdomen_siemens_overlays.dcm"
    if not (TESTDATA / name).exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    ds = pydicom.dcmread(TESTDATA / name)
    groups = sorted({plane.group for plane in pixels.overlays(ds)})
    assert groups  # the test needs overlay planes
    ds.PatientBirthDate = "19700101"  # its anonymizer's 11111111, which dcmpschk doubts
    state = _state_of(ds, None, Turn(90))
    assert [state[(g << 16) | 0x1001].value for g in groups] == ["OVERLAYS"] * len(groups)
    assert [layer.GraphicLayer for layer in state.GraphicLayerSequence] == ["OVERLAYS"]
    rendered = _dcmtk_render(TESTDATA / name, _checked(state, tmp_path), tmp_path)
    printed = _as_printed(ds, None, Turn(90))
    _same(rendered, printed)
    # (the planes make a difference: without them the print is not the state's rendering)
    bare = Turn(90).pixels(pixels.render(ds, 0, None, with_overlays=False)).astype(np.int32)
    assert int(np.abs(rendered - bare).max()) > 100


def test_images_are_grouped_by_what_a_state_shares(tmp_path):
    one = pydicom.dcmread(make_ct(tmp_path / "1.dcm", rows=96))
    two = pydicom.dcmread(make_ct(tmp_path / "2.dcm", series_uid=one.SeriesInstanceUID))
    other = pydicom.dcmread(make_ct(tmp_path / "3.dcm"))
    other.RescaleIntercept = -1000
    colour = pydicom.examples.rgb_color
    document = pydicom.dcmread(make_ct(tmp_path / "4.dcm"))  # its pixels taken away
    for keyword in ("Rows", "Columns", "PixelData"):
        delattr(document, keyword)
    document.WindowCenter, document.WindowWidth = 40, 400  # (a window: no pixels needed)

    def shown(ds, window, turn=Turn()):
        return gsps.shown_image(ds, _ref(ds), 0, pixels.Window(*window), turn)

    states = _states(
        shown(one, (40, 400)),
        shown(two, (50, 350)),  # the same turn and rescale: the same state, its own window
        shown(one, (40, 400), Turn(90)),  # another turn
        shown(other, (40, 400)),  # another rescale
        gsps.shown_image(colour, _ref(colour), 0, None, Turn()),  # colour: none
        gsps.shown_image(document, _ref(document), 0, None, Turn()),  # no image: none
    )
    assert [len(images) for _, images in states] == [2, 1, 1]
    first = states[0][0]
    assert [
        (v.ReferencedImageSequence[0].ReferencedSOPInstanceUID, float(v.WindowWidth))
        for v in first.SoftcopyVOILUTSequence
    ] == [(one.SOPInstanceUID, 400.0), (two.SOPInstanceUID, 350.0)]
    assert [
        list(a.DisplayedAreaBottomRightHandCorner) for a in first.DisplayedAreaSelectionSequence
    ] == [
        [128, 96],
        [128, 128],
    ]
    assert [s.InstanceNumber for s, _ in states] == [1, 2, 3]
    assert len({s.SOPInstanceUID for s, _ in states}) == 3
    assert {s.SeriesInstanceUID for s, _ in states} == {"1.2.3.4"}
    for state, _ in states:
        _checked(state, tmp_path)


def test_the_key_object_selection_points_each_image_at_its_state():
    image = kos.KeyImageRef("1.2.1", "1.2.840.10008.5.1.4.1.1.2", "1.2.1.1")
    state = kos.ObjectRef("1.2.9", gsps.GSPS_SOP_CLASS, "1.2.9.1")
    ds = kos.key_object_selection(
        study_instance_uid="1.2",
        study_header={},
        images=[
            kos.KeyImageRef(**{**image.__dict__, "presentation": state}),
            kos.KeyImageRef("1.2.1", image.sop_class_uid, "1.2.1.2"),  # colour: none
        ],
        description="Key images",
        observer="Rao^Anita",
        series_number=3,
        when=WHEN,
    )
    items = [i.ReferencedSOPSequence[0] for i in ds.ContentSequence if i.ValueType == "IMAGE"]
    assert items[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == "1.2.9.1"
    assert items[0].ReferencedSOPSequence[0].ReferencedSOPClassUID == gsps.GSPS_SOP_CLASS
    assert "ReferencedSOPSequence" not in items[1]
    evidence = {
        s.SeriesInstanceUID: [r.ReferencedSOPInstanceUID for r in s.ReferencedSOPSequence]
        for s in ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence
    }
    assert evidence == {"1.2.1": ["1.2.1.1", "1.2.1.2"], "1.2.9": ["1.2.9.1"]}


@pytest.mark.parametrize(("rotation", "flipped"), TURNS)
def test_a_state_is_read_back_as_it_was_written(tmp_path, rotation, flipped):
    """What the viewer is told of a key image's state (``seen_in``) is the turn and window it
    was marked with."""
    ds = pydicom.dcmread(make_ct(tmp_path / "ct.dcm", rows=96))
    other = pydicom.dcmread(make_ct(tmp_path / "other.dcm", series_uid=ds.SeriesInstanceUID))
    turn = Turn(rotation, flipped)
    [(state, _)] = _states(
        gsps.shown_image(ds, _ref(ds), 0, pixels.Window(40, 400), turn),
        gsps.shown_image(other, _ref(other), 0, pixels.Window(-600, 1500, "SIGMOID"), turn),
        header=ds,
    )
    assert gsps.seen_in(state, ds.SOPInstanceUID) == gsps.Seen(
        turn, pixels.Window(40, 400, "LINEAR")
    )
    assert gsps.seen_in(state, other.SOPInstanceUID).window == pixels.Window(-600, 1500, "SIGMOID")
    assert gsps.seen_in(state, "1.2.3.999") is None


def test_reading_a_state_of_another_maker():
    """A state written elsewhere: one frame of a multi-frame image, a VOI for all its images,
    or none a viewer can apply (a VOI LUT; a LINEAR window under 1); a rotation that is not a
    quarter."""
    state = pydicom.Dataset()
    image = pydicom.Dataset()
    image.ReferencedSOPInstanceUID, image.ReferencedFrameNumber = "1.2.5", [2, 3]
    series = pydicom.Dataset()
    series.ReferencedImageSequence = [image]
    state.ReferencedSeriesSequence = [series]
    state.ImageRotation, state.ImageHorizontalFlip = 45, "Y"
    voi = pydicom.Dataset()
    voi.WindowCenter, voi.WindowWidth = ["300", "40"], ["1500", "400"]  # the first is shown
    state.SoftcopyVOILUTSequence = [voi]
    seen = gsps.seen_in(state, "1.2.5", 3)
    assert seen == gsps.Seen(Turn(0, True), pixels.Window(300, 1500, "LINEAR"))
    assert gsps.seen_in(state, "1.2.5", 1) is None  # not that frame
    voi.WindowWidth = ["0.5", "400"]
    assert gsps.seen_in(state, "1.2.5", 2).window is None
    del voi.WindowCenter, voi.WindowWidth
    voi.VOILUTSequence = [pydicom.Dataset()]
    assert gsps.seen_in(state, "1.2.5", 2).window is None
    # what it draws on the image (not on the display), for every image where it names none
    annotation = pydicom.Dataset()
    on_image, on_display, malformed, text = (pydicom.Dataset() for _ in range(4))
    on_image.GraphicAnnotationUnits, on_image.GraphicType = "PIXEL", "POLYLINE"
    on_image.GraphicData = [1.0, 1.0, 5.0, 1.0, 5.0, 5.0, 1.0, 5.0]
    on_display.GraphicAnnotationUnits, on_display.GraphicType = "DISPLAY", "POLYLINE"
    on_display.GraphicData = [0.1, 0.1, 0.2, 0.2]
    malformed.GraphicAnnotationUnits, malformed.GraphicType = "PIXEL", "POLYLINE"
    malformed.GraphicData = [1.0, 2.0, 3.0]
    annotation.GraphicObjectSequence = [on_image, on_display, malformed]
    text.AnchorPointAnnotationUnits, text.AnchorPoint = "PIXEL", [3.0, 4.0]
    text.UnformattedTextValue = "Calcification"
    annotation.TextObjectSequence = [text]
    state.GraphicAnnotationSequence = [annotation]
    assert gsps.seen_in(state, "1.2.5", 3).marks == (
        gsps.Mark("polyline", (1, 1, 5, 1, 5, 5, 1, 5)),
        gsps.Mark("text", (3, 4), "Calcification"),
    )


def test_the_measurements_drawn_are_graphic_annotations(tmp_path):
    """A length and an angle as POLYLINEs, an ROI as an ELLIPSE (its major axis' ends, then
    its minor axis'), in image pixels, each with its words, on a layer of their own (after
    the overlays'); DCMTK reads them so."""
    path = make_ct(tmp_path / "ct.dcm", rows=96)
    ds = pydicom.dcmread(path)
    marks = [
        gsps.Mark("length", (10.0, 20.0, 90.0, 20.0), "Length 40.1 mm"),
        gsps.Mark("roi", (30.0, 30.0, 70.0, 50.0), "ROI mean 40 HU"),
        gsps.Mark("angle", (10.0, 80.0, 40.0, 60.0, 80.0, 80.0), ""),
    ]
    shown = gsps.shown_image(ds, _ref(ds), 0, pixels.Window(40, 400), Turn(90), marks)
    [(state, _)] = _states(shown, header=ds)
    assert [
        (layer.GraphicLayer, layer.GraphicLayerOrder) for layer in state.GraphicLayerSequence
    ] == [("MEASUREMENTS", 1)]
    [annotation] = state.GraphicAnnotationSequence
    assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert [
        (g.GraphicType, g.NumberOfGraphicPoints, [float(v) for v in g.GraphicData])
        for g in annotation.GraphicObjectSequence
    ] == [
        ("POLYLINE", 2, [10, 20, 90, 20]),
        ("ELLIPSE", 4, [30, 40, 70, 40, 50, 30, 50, 50]),
        ("POLYLINE", 3, [10, 80, 40, 60, 80, 80]),
    ]
    assert [
        (t.UnformattedTextValue, [float(v) for v in t.AnchorPoint])
        for t in annotation.TextObjectSequence
    ] == [("Length 40.1 mm", [90, 20]), ("ROI mean 40 HU", [70, 50])]
    (dcmp2pgm,) = required("dcmp2pgm")
    done = subprocess.run(
        [dcmp2pgm, "-v", "-p", str(_checked(state, tmp_path)), str(path), str(tmp_path / "o.pgm")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    dump = done.stdout + done.stderr
    assert "Number of graphic objects: 3" in dump and "Number of text objects: 2" in dump, dump
    assert 'text 1: "Length 40.1 mm"' in dump and "type=ellipse" in dump, dump
    # read back for the viewer: the lines and the ellipse, then the words where they stand
    assert gsps.seen_in(state, ds.SOPInstanceUID).marks == (
        gsps.Mark("length", (10, 20, 90, 20)),
        gsps.Mark("roi", (30, 30, 70, 50)),
        gsps.Mark("angle", (10, 80, 40, 60, 80, 80)),
        gsps.Mark("text", (90, 20), "Length 40.1 mm"),
        gsps.Mark("text", (70, 50), "ROI mean 40 HU"),
    )
