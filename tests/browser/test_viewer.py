"""The viewer in real Chromium: scroll, window, zoom, measure, reload; the canvas must show
what the server renders for the same frame and window."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from playwright.sync_api import expect
from pydicom.pixels import apply_color_lut
from pydicom.uid import generate_uid

from tests.browser.test_sign_in import sign_in
from tests.browser.test_studies import centre_with_technician
from tests.dicom.test_orientation import ORIENTED_FILES
from tests.dicom_factory import (
    TESTDATA,
    example,
    make_bits_above_stored,
    make_cr,
    make_ct,
    make_float_map,
    make_series,
    make_single_bit,
    restamped,
    with_lut,
)

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def _token(app_url: str, username: str, password: str) -> str:
    r = httpx.post(app_url + "/auth/token", data={"username": username, "password": password})
    return r.json()["access_token"]


def _upload(app_url: str, paths) -> str:
    token = _token(app_url, "technician", "tech123")
    r = httpx.post(
        app_url + "/studies",
        headers={"Authorization": f"Bearer {token}"},
        files=[("files", (p.name, p.read_bytes())) for p in paths],
        timeout=120,
    )
    assert r.status_code == 201, r.text
    return r.json()["study_id"]


def _signed_series(app_url: str, study_id: str, doctor: dict) -> list[dict]:
    """The study's report written and signed by the ``doctor`` (headers) reading it, and
    its series then (the key images' documents filed with them)."""
    body = {"findings": "Key image.", "impression": "Normal."}
    saved = httpx.put(f"{app_url}/studies/{study_id}/report", json=body, headers=doctor)
    assert saved.status_code == 200, saved.text
    verified = httpx.post(f"{app_url}/studies/{study_id}/report/verify", headers=doctor)
    assert verified.status_code == 200, verified.text
    return httpx.get(f"{app_url}/studies/{study_id}", headers=doctor).json()["series"]


def _server_rendering(app_url: str, token: str, path: str, **params: str | None) -> np.ndarray:
    """The server's PNG rendering of ``/dicomweb/studies/{path}`` at window 60/420 (or the
    ``window`` given; ``None``: none asked for), as grey."""
    params = {"window": "60,420", **params}
    r = httpx.get(
        f"{app_url}/dicomweb/studies/{path}/rendered",
        params={k: v for k, v in params.items() if v is not None},
        headers={"Authorization": f"Bearer {token}", "Accept": "image/png"},
    )
    assert r.status_code == 200, r.text
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("L"))


def _drag(page, start: tuple[float, float], end: tuple[float, float], steps: int) -> None:
    """Press the left button at ``start`` (page pixels), move to ``end`` and let go."""
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=steps)
    page.mouse.up()


def _state(page) -> dict:
    return page.evaluate("window.__pacsViewer.state()")


@pytest.fixture
def ct_study(app_url, tmp_path):
    paths = make_series(tmp_path / "ct", 20, patient_name="VIEWER^TEST", patient_id="VW-01")
    return _upload(app_url, paths), paths


def test_read_a_multislice_study(page, new_page, app_url, ct_study):
    study_id, paths = ct_study
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/study/{study_id}")
    page.click("#open-viewer")
    stage = page.locator("#vw-stage")
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(page.locator(".vw-thumb")).to_have_count(1)
    # the series' preview replaces the 'loading preview' note once it has loaded
    expect(page.locator(".vw-thumb-pending")).to_have_count(0, timeout=30_000)
    assert page.evaluate("document.querySelector('.vw-thumb img').naturalWidth") > 0
    first = _state(page)
    assert first["count"] == 20 and first["index"] == 10
    # the page named the first image, so it was drawn before the series' metadata was asked for
    expect(stage).to_have_attribute("data-shown", "1")
    order = page.evaluate(r"""() => {
        const entries = performance.getEntriesByType("resource").map((e) => e.name);
        return [entries.findIndex((n) => n.includes("/frames/")),
                entries.findIndex((n) => /\/metadata(\?|$)/.test(n))];
    }""")
    assert -1 < order[0] < order[1], order

    # at 1280 px the toolbar stays one line (a second line would push the stage down), and a
    # tool whose label is hidden for room still names itself to the pointer and to assistive tech
    def toolbar_rows() -> list:
        return page.evaluate("""() => [...document.querySelectorAll('#vw-toolbar > *')]
            .filter((e) => e.getClientRects().length)  // shown (To report is, in a report page)
            .map((e) => [e.id, e.getBoundingClientRect().top])""")

    def one_line(rows: list) -> bool:
        tops = [top for _, top in rows]
        return max(tops) - min(tops) < 8

    assert one_line(toolbar_rows()), toolbar_rows()
    expect(page.locator(".vw-tool-label").first).to_be_hidden()
    expect(page.get_by_role("button", name="Measure")).to_have_attribute("title", "Measure")
    # on a wide screen the tools are labelled, still on one line; the image keeps its place at
    # the stage's centre as the stage widens and narrows again
    shown, width = _state(page), stage.bounding_box()["width"]
    page.set_viewport_size({"width": 1680, "height": 800})
    expect(page.locator("#vw-mode-measure")).to_contain_text("Measure")
    expect(page.locator(".vw-tool-label").first).to_be_visible()
    assert one_line(toolbar_rows()), toolbar_rows()
    grown = stage.bounding_box()["width"] - width
    assert grown > 300
    page.wait_for_function(f"window.__pacsViewer.state().panX !== {shown['panX']}")
    assert abs(_state(page)["panX"] - (shown["panX"] + grown / 2)) <= 1, (shown, _state(page))
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_function(f"Math.abs(window.__pacsViewer.state().panX - {shown['panX']}) <= 1")
    assert _state(page)["zoom"] == shown["zoom"]

    # scroll with the wheel and the keyboard
    stage.hover()
    for _ in range(3):
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(80)
    expect(stage).to_have_attribute("data-index", "13")
    stage.click()
    page.keyboard.press("ArrowUp")
    expect(stage).to_have_attribute("data-index", "12")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("Im 13/20")

    # window/level by dragging
    box = stage.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.click("#vw-mode-wl")
    _drag(page, (cx, cy), (cx + 120, cy + 40), steps=6)
    after = _state(page)
    assert after["ww"] > first["ww"] and after["wc"] > first["wc"]

    # zoom by dragging up
    page.click("#vw-mode-zoom")
    _drag(page, (cx, cy), (cx, cy - 100), steps=6)
    assert _state(page)["zoom"] > after["zoom"] * 1.5

    # measure a horizontal line of 150 screen pixels: PixelSpacing decides the millimetres
    page.click("#vw-fit")
    zoom = _state(page)["zoom"]
    page.click("#vw-mode-measure")
    _drag(page, (cx - 75, cy), (cx + 75, cy), steps=6)
    spacing = float(pydicom.dcmread(paths[0], stop_before_pixels=True).PixelSpacing[1])
    expected_mm = 150 / zoom * spacing
    measured = float(re.match(r"([\d.]+) mm", stage.get_attribute("data-measure")).group(1))
    assert abs(measured - expected_mm) < 0.5, (measured, expected_mm)

    # an elliptical ROI: the statistics of the file's values (rescaled: HU) in the pixels whose
    # centres lie inside the ellipse, and the ellipse's area in mm2
    page.click("#vw-mode-roi")
    _drag(page, (cx - 60, cy - 40), (cx + 45, cy + 30), steps=6)
    roi = _state(page)
    assert roi["measure"]["kind"] == "roi"
    x0, y0, x1, y1 = roi["measure"]["p"]
    ds = next(d for d in map(pydicom.dcmread, paths) if d.SOPInstanceUID == roi["sop"])
    values = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    yy, xx = np.mgrid[0 : ds.Rows, 0 : ds.Columns] + 0.5
    rx, ry = abs(x1 - x0) / 2, abs(y1 - y0) / 2
    inside = ((xx - (x0 + x1) / 2) / rx) ** 2 + ((yy - (y0 + y1) / 2) / ry) ** 2 <= 1
    picked = values[inside]
    shown = stage.get_attribute("data-measure")
    found = re.fullmatch(
        r"mean (-?[\d.]+) HU, SD ([\d.]+)\nmin (-?\d+), max (-?\d+)"
        r"\narea ([\d.]+) mm. \((\d+) px\)",
        shown,
    )
    assert found, shown
    assert int(found[6]) == picked.size > 100
    assert abs(float(found[1]) - picked.mean()) <= 0.051, (shown, picked.mean())
    assert abs(float(found[2]) - picked.std()) <= 0.051, (shown, picked.std())
    assert (int(found[3]), int(found[4])) == (picked.min(), picked.max())
    area = np.pi * rx * ry * float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1])
    assert abs(float(found[5]) - area) <= 0.051, (shown, area)
    # an angle: drag its first arm to the vertex, then click where the second ends
    page.click("#vw-mode-angle")
    _drag(page, (cx - 100, cy + 50), (cx, cy + 50), steps=5)
    page.mouse.move(cx + 100, cy - 50, steps=5)
    assert _state(page)["measure"]["kind"] == "roi"  # the angle is not done yet
    page.mouse.click(cx + 100, cy - 50)
    assert _state(page)["measure"]["kind"] == "angle"
    expect(stage).to_have_attribute("data-measure", "135.0°")
    # Escape drops an angle begun, not one finished
    _drag(page, (cx - 50, cy), (cx, cy - 60), steps=3)
    page.keyboard.press("Escape")
    page.mouse.click(cx + 80, cy)
    expect(stage).to_have_attribute("data-measure", "135.0°")
    assert page.evaluate("window.__pacsViewer.measures()") == ["length", "roi", "angle"]

    # one click opens the tag browser on the current instance, beside the stage and on the
    # screen; the stage it narrows keeps its image centred; another click closes it
    pan, width = _state(page)["panX"], stage.bounding_box()["width"]
    page.click("#vw-tags-toggle")
    tags, panel = page.locator("#vw-tag-table"), page.locator(".vw-tag-panel")
    expect(tags).to_be_visible()
    # each tag is named by its keyword, from the server's data dictionary
    expect(tags).to_contain_text("(0020,0013)InstanceNumberIS")
    expect(panel).to_be_in_viewport(ratio=1)
    narrowed = width - stage.bounding_box()["width"]
    assert narrowed > 300
    page.wait_for_function(f"window.__pacsViewer.state().panX !== {pan}")
    assert abs(_state(page)["panX"] - (pan - narrowed / 2)) <= 1
    # the table follows the image shown (instance number = index + 1 in this series)
    index = _state(page)["index"]
    stage.focus()
    page.keyboard.press("ArrowDown")
    expect(stage).to_have_attribute("data-index", str(index + 1))
    expect(tags).to_contain_text(f"(0020,0013)InstanceNumberIS{index + 2}(")
    # a sequence starts closed and opens, on a click, into its items and their elements
    sequence = tags.locator("tr[data-path='00101002']")
    expect(sequence).to_contain_text("OtherPatientIDsSequenceSQ2 item(s)")
    expect(sequence).to_have_attribute("aria-expanded", "false")
    expect(tags).not_to_contain_text("1234ABCD")
    sequence.click()
    expect(sequence).to_have_attribute("aria-expanded", "true")
    expect(tags).to_contain_text("(FFFE,E000)Item 12 element(s)")
    expect(tags).to_contain_text("(0010,0020)PatientIDLO1234ABCD")
    sequence.click()
    expect(tags).not_to_contain_text("1234ABCD")
    # the filter keeps the rows that match by keyword, tag or value, and the rows that lead
    # to a match inside a closed sequence; it stays while the images change
    page.fill("#vw-tag-filter", "instancenumber")
    expect(tags.locator("tr")).to_have_count(1)
    expect(tags).to_contain_text("(0020,0013)InstanceNumber")
    page.fill("#vw-tag-filter", "(0028,0010)")
    expect(tags.locator("tr")).to_have_count(1)
    expect(tags).to_contain_text("(0028,0010)RowsUS128")
    page.fill("#vw-tag-filter", "1234abcd")
    expect(tags.locator("tr")).to_have_count(3)
    expect(tags).to_contain_text("OtherPatientIDsSequence")
    expect(tags).to_contain_text("Item 2")
    expect(tags).not_to_contain_text("Item 1")
    stage.focus()
    page.keyboard.press("ArrowUp")
    expect(stage).to_have_attribute("data-index", str(index))
    expect(page.locator("#vw-tag-filter")).to_have_value("1234abcd")
    expect(tags.locator("tr")).to_have_count(3)
    page.fill("#vw-tag-filter", "no-such-tag")
    expect(tags.locator("tr")).to_have_count(0)
    expect(page.locator("#vw-tag-note")).to_have_text("No tag matches \u201cno-such-tag\u201d")
    page.fill("#vw-tag-filter", "")
    page.click("#vw-tags-toggle")
    expect(panel).to_be_hidden()
    page.wait_for_function(f"Math.abs(window.__pacsViewer.state().panX - {pan}) <= 1")
    assert stage.bounding_box()["width"] == width

    # reload: the same image and window come back
    before = _state(page)
    page.reload()
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    page.wait_for_timeout(300)
    restored = _state(page)
    assert restored["sop"] == before["sop"]
    assert (restored["index"], round(restored["wc"]), round(restored["ww"])) == (
        before["index"],
        round(before["wc"]),
        round(before["ww"]),
    )
    assert (restored["zoom"], restored["panX"], restored["panY"]) == (
        before["zoom"],
        before["panX"],
        before["panY"],
    )
    # a reload in a narrower window: the same part of the image stays at the stage's centre
    width = stage.bounding_box()["width"]
    page.set_viewport_size({"width": 1100, "height": 800})
    page.reload()
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    page.wait_for_timeout(300)
    narrowed = width - page.locator("#vw-stage").bounding_box()["width"]
    assert narrowed > 100
    restored = _state(page)
    assert restored["zoom"] == before["zoom"]
    assert abs(restored["panX"] - (before["panX"] - narrowed / 2)) <= 1
    assert restored["panY"] == before["panY"]

    # another browser, with nothing of this tab's: the measurements were kept on the server,
    # each user's own
    seen = {
        role: _measures_elsewhere(new_page, role, password, study_id, before["index"])
        for role, password in (("radiologist", "radio123"), ("technician", "tech123"))
    }
    assert seen == {"radiologist": ["length", "roi", "angle"], "technician": []}


def _measures_elsewhere(new_page, role: str, password: str, study_id: str, index: int) -> list:
    """The measurements of image ``index`` the viewer shows ``role`` in a new browser."""
    page = new_page()
    sign_in(page, role, password)
    expect(page.locator(f"#dashboard-{role}")).to_be_visible()
    page.goto(f"/study/{study_id}")
    page.click("#open-viewer")
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    page.evaluate(f"window.__pacsViewer.go({index})")
    expect(page.locator("#vw-stage")).to_have_attribute("data-index", str(index))
    return page.evaluate("window.__pacsViewer.measures()")


def _shown_at_window(page, study_id: str, shot: Path, size: int = 128) -> tuple[dict, np.ndarray]:
    """Open ``study_id`` in the viewer at window 60/420 and actual size: its state, and the
    image's ``size`` x ``size`` pixels on the canvas as grey (screenshot saved as ``shot``)."""
    page.goto(f"/viewer/{study_id}")
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    page.evaluate("window.__pacsViewer.setWindow(60, 420)")
    page.click("#vw-actual")
    page.wait_for_timeout(200)
    view = _state(page)
    assert view["zoom"] == 1
    page.locator("#vw-canvas").screenshot(path=str(shot))
    canvas = np.asarray(Image.open(shot).convert("L"))
    return view, canvas[view["panY"] : view["panY"] + size, view["panX"] : view["panX"] + size]


def test_canvas_matches_the_server_rendering(page, app_url, ct_study):
    study_id, _ = ct_study
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    view, on_screen = _shown_at_window(page, study_id, ARTIFACTS / "viewer-canvas.png")
    page.screenshot(path=str(ARTIFACTS / "viewer-page.png"))

    token = _token(app_url, "radiologist", "radio123")
    meta = httpx.get(
        f"{app_url}/studies/{study_id}", headers={"Authorization": f"Bearer {token}"}
    ).json()
    series_uid = meta["series"][0]["series_instance_uid"]
    server = _server_rendering(
        app_url,
        token,
        f"{meta['study_instance_uid']}/series/{series_uid}/instances/{view['sop']}"
        f"/frames/{view['frame'] + 1}",
    )
    assert on_screen.shape == server.shape
    off = np.abs(on_screen.astype(int) - server.astype(int)) > 1
    assert off.mean() <= 0.005, f"{off.mean():.2%} of pixels differ"


# The canvas's pixels of the image shown at actual size (the part inside the canvas).
SHOWN_PIXELS = """() => {
    const s = window.__pacsViewer.state(), c = document.getElementById("vw-canvas");
    const x = Math.max(0, s.panX), y = Math.max(0, s.panY), [cols, rows] = s.shown;  // as turned
    const w = Math.min(c.width, s.panX + cols) - x, h = Math.min(c.height, s.panY + rows) - y;
    const data = c.getContext("2d").getImageData(x, y, w, h).data;
    return { x: x - s.panX, y: y - s.panY, width: w, height: h, rgba: Array.from(data) };
}"""


def _opened_at_actual_size(page, study_id: str, index: int = 0) -> dict:
    """Open ``study_id`` in the viewer as its radiologist, at image ``index`` and actual
    size: the canvas's pixels of it (:data:`SHOWN_PIXELS`), with the viewer's state."""
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/viewer/{study_id}")
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    if index:
        page.evaluate(f"window.__pacsViewer.go({index})")
        expect(page.locator("#vw-stage")).to_have_attribute("data-index", str(index))
    page.click("#vw-actual")
    expect(page.locator("#vw-overlay-br")).to_contain_text("Zoom 100%")
    return {**page.evaluate(SHOWN_PIXELS), "state": _state(page)}


def _as_displayed(path: Path, frame: int) -> np.ndarray:
    """Frame ``frame`` (0-based) of ``path`` in RGB as pydicom decodes and converts it (YBR to
    RGB, a palette's 16-bit entries to 8 bits)."""
    ds = pydicom.dcmread(path)
    values = ds.pixel_array
    if int(ds.get("NumberOfFrames") or 1) > 1:
        values = values[frame]
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        values = apply_color_lut(values, ds)
        values = values >> 8 if values.max() > 255 else values
    return values.astype(np.uint8)


@pytest.mark.parametrize(
    "name",
    [
        "pydicom:palette",  # native, 16-bit palette entries
        "pydicom:planes",  # native RGB, plane by plane
        "transfer_syntax/SC_ybr_full_422_uncompressed.dcm",  # native YBR, subsampled
        "transfer_syntax/SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, YBR inside
        "clinical/US_multiframe_30f_jpeg.dcm",  # an echocardiogram, 30 frames of JPEG
        "transfer_syntax/SC_rgb_rle_2frame.dcm",  # RLE, 2 frames
    ],
)
def test_colour_images_show_their_own_colours(page, app_url, tmp_path, name):
    """Every colour form shows as pydicom converts it to RGB, pixel for pixel. (Seen: a
    palette image drawn as grey noise, its RGB bytes read as indexes.)"""
    if not name.startswith("pydicom:") and not (TESTDATA / name).exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    path = restamped(name, tmp_path, "COL-" + uuid.uuid4().hex[:8].upper(), "COLOUR^TEST")
    shown = _opened_at_actual_size(page, _upload(app_url, [path]))
    expect(page.locator("#vw-overlay-bl")).to_contain_text("colour")
    expect(page.locator("#vw-overlay-bl")).not_to_contain_text("WL")
    expected = _as_displayed(path, shown["state"]["frame"])
    assert shown["width"] > 0 and shown["height"] > 0
    rgba = np.asarray(shown["rgba"], dtype=np.uint8).reshape(shown["height"], shown["width"], 4)
    window = expected[
        shown["y"] : shown["y"] + shown["height"], shown["x"] : shown["x"] + shown["width"]
    ]
    assert (rgba[..., 3] == 255).all()
    difference = np.abs(rgba[..., :3].astype(int) - window.astype(int))
    assert difference.max() == 0, (difference.max(), difference.mean())


def test_a_single_bit_frame_shows_its_own_bits(page, app_url, tmp_path):
    """The second frame of a single-bit image starts inside a byte and comes packed, 8
    pixels to a byte, from the start of one: it shows its own bits, set ones white."""
    bits = make_single_bit(tmp_path / "bits.dcm")
    shown = _opened_at_actual_size(page, _upload(app_url, [tmp_path / "bits.dcm"]), index=1)
    expect(page.locator("#vw-overlay-bl")).to_contain_text("frame 2")
    assert shown["state"]["frame"] == 1
    assert (shown["width"], shown["height"]) == (37, 29)
    rgba = np.asarray(shown["rgba"], dtype=np.uint8).reshape(29, 37, 4)
    assert np.array_equal(rgba[..., 0], bits[1] * 255)


def test_a_sigmoid_window_is_shown_as_the_server_renders_it(page, app_url, tmp_path):
    """An image whose VOI LUT Function is SIGMOID (as mammography and many radiography
    devices have it) shows its windows, the reader's too, through the sigmoid, as the
    server and DCMTK render it, not as a linear ramp (seen: linear)."""
    paths = make_series(tmp_path / "sig", 3, patient_name="SIGMOID^TEST", patient_id="SIG-01")
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 40, 400, "SIGMOID"
        ds.save_as(path)
    study_id = _upload(app_url, paths)
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    view, on_screen = _shown_at_window(page, study_id, ARTIFACTS / "viewer-sigmoid.png")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("WL 60 / WW 420 sigmoid")
    token = _token(app_url, "radiologist", "radio123")
    ds = pydicom.dcmread(paths[0])
    frame = f"{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{view['sop']}/frames/1"
    server = _server_rendering(app_url, token, frame)
    linear = _server_rendering(app_url, token, frame, window="60,420,linear")
    assert (np.abs(server.astype(int) - linear.astype(int)) > 10).mean() > 0.1
    off = np.abs(on_screen.astype(int) - server.astype(int)) > 1
    assert off.mean() <= 0.005, f"{off.mean():.2%} of pixels differ"


def _rendered_as_stored(
    app_url: str, token: str, ds: pydicom.Dataset, sop: str, frame: int = 1
) -> np.ndarray:
    """The server's PNG rendering of ``frame`` of instance ``sop`` of ``ds``'s series with no
    window asked for (the image's own VOI LUT, window or min-max), as grey."""
    path = f"{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{sop}/frames/{frame}"
    return _server_rendering(app_url, token, path, window=None).astype(int)


def _grey(shown: dict) -> np.ndarray:
    """The red channel of canvas pixels (:data:`SHOWN_PIXELS`) of a grey image."""
    rgba = np.asarray(shown["rgba"], dtype=np.uint8).reshape(shown["height"], shown["width"], 4)
    return rgba[..., 0].astype(int)


def _radiographs_with_luts(folder: Path) -> list[Path]:
    """Two radiographs of one series shown through their devices' LUTs, no window: the first
    with a Modality LUT and an 8-bit VOI LUT of 4096 entries (both over 1 KiB: the metadata
    gives their data as BulkDataURIs), the second MONOCHROME1 with a Modality LUT of numbers
    and a VOI LUT of 512 words (InlineBinary)."""
    study_uid, series_uid = generate_uid(), generate_uid()
    curve = np.rint(255 * (np.arange(4096) / 4095) ** 0.6).astype(int)
    paths = []
    for n, photometric in ((1, "MONOCHROME2"), (2, "MONOCHROME1")):
        path = folder / f"cr{n}.dcm"
        ds = make_cr(
            path,
            photometric=photometric,
            study_uid=study_uid,
            series_uid=series_uid,
            instance_number=n,
        )
        if n == 1:
            with_lut(ds, "ModalityLUTSequence", np.arange(4096) + 100, first=0, bits=16)
            with_lut(ds, "VOILUTSequence", curve, first=100, bits=8, explanation="DEVICE CURVE")
        else:
            with_lut(ds, "ModalityLUTSequence", np.arange(1000, 3500) // 2, first=1000, vr="US")
            with_lut(ds, "VOILUTSequence", curve[::8] * 16, first=800, bits=12)
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_radiographs_show_through_their_modality_and_voi_luts(page, app_url, tmp_path):
    """A radiograph whose device wrote a Modality LUT and a VOI LUT (as many CR and DX
    devices do) shows through them, as the server renders it (and DCMTK:
    tests/dicom/test_luts.py), not by the min-max of its stored values (seen); a change of
    window leaves the LUT, and the presets bring it back."""
    paths = _radiographs_with_luts(tmp_path)
    study_id = _upload(app_url, paths)
    token = _token(app_url, "radiologist", "radio123")
    ds = pydicom.dcmread(paths[0])
    _opened_at_actual_size(page, study_id, index=1)
    for index in (0, 1):
        page.evaluate(f"window.__pacsViewer.go({index})")
        expect(page.locator("#vw-stage")).to_have_attribute("data-index", str(index))
        expect(page.locator("#vw-overlay-bl")).to_contain_text(f"Im {index + 1}/2")
        page.wait_for_timeout(200)
        shown = page.evaluate(SHOWN_PIXELS)
        view = _state(page)
        assert view["lut"] is True
        label = "VOI LUT DEVICE CURVE" if index == 0 else "VOI LUT"
        expect(page.locator("#vw-overlay-bl")).to_contain_text(label)
        expect(page.locator("#vw-overlay-bl")).not_to_contain_text("WL")
        server = _rendered_as_stored(app_url, token, ds, view["sop"])
        assert (shown["width"], shown["height"]) == (128, 128)
        assert np.abs(_grey(shown) - server).max() == 0
        assert len(np.unique(server)) > 50  # a picture, not a flat field
    # the reader's window replaces the LUT; the preset brings it back
    page.evaluate("window.__pacsViewer.setWindow(2000, 1000)")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("WL 2000 / WW 1000")
    assert _state(page)["lut"] is False
    page.select_option("#vw-presets", "lut")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("VOI LUT")
    assert _state(page)["lut"] is True


def test_the_frames_of_a_multiframe_radiograph_share_its_voi_lut(page, app_url, tmp_path):
    """Each frame of a multi-frame image shows through the instance's VOI LUT, whose data
    (a BulkDataURI) is fetched once for all of them."""
    ds = make_cr(tmp_path / "frames.dcm")
    frame = ds.pixel_array
    ds.NumberOfFrames = 3
    ds.PixelData = np.stack([frame, 4095 - frame, frame // 2]).astype(np.uint16).tobytes()
    curve = np.rint(4095 * (np.arange(4096) / 4095) ** 0.5).astype(int)
    with_lut(ds, "VOILUTSequence", curve, bits=12)
    ds.save_as(tmp_path / "frames.dcm", enforce_file_format=True)
    fetched = []
    page.on("request", lambda r: fetched.append(r.url) if "/bulk/00283010" in r.url else None)
    _opened_at_actual_size(page, _upload(app_url, [tmp_path / "frames.dcm"]))
    token = _token(app_url, "radiologist", "radio123")
    for index in (0, 1, 2):
        page.evaluate(f"window.__pacsViewer.go({index})")
        expect(page.locator("#vw-overlay-bl")).to_contain_text(
            f"frame {index + 1}" if index else "Im 1/3"
        )
        page.wait_for_timeout(200)
        assert _state(page)["lut"] is True
        server = _rendered_as_stored(app_url, token, ds, ds.SOPInstanceUID, index + 1)
        assert np.abs(_grey(page.evaluate(SHOWN_PIXELS)) - server).max() == 0
    assert len(fetched) == 1, fetched


def _min_max_said(values: np.ndarray) -> str:
    """What the overlay says of the LINEAR_EXACT min-max window of fractional ``values``:
    its numbers whole from 10 on, else to 3 significant digits."""
    low, high = float(values.min()), float(values.max())

    def said(x: float) -> str:
        return str(round(x)) if abs(x) >= 10 else f"{float(f'{x:.3g}'):g}"

    return f"WL {said((low + high) / 2)} / WW {said(high - low)} linear exact"


@pytest.mark.parametrize("double", [False, True], ids=["float", "double"])
def test_a_float_image_shows_its_values(page, app_url, tmp_path, double):
    """A parametric map of Float (or Double Float) Pixel Data shows as the server renders it
    (its values' min-max), and the window it names is that of its float values. (Seen: the
    float bits read as 32-bit integers, noise on the canvas and a window in the billions.)"""
    values = make_float_map(tmp_path / "map.dcm", double=double)
    shown = _opened_at_actual_size(page, _upload(app_url, [tmp_path / "map.dcm"]))
    ds = pydicom.dcmread(tmp_path / "map.dcm", stop_before_pixels=True)
    token = _token(app_url, "radiologist", "radio123")
    server = _rendered_as_stored(app_url, token, ds, ds.SOPInstanceUID)
    assert (shown["width"], shown["height"]) == (64, 48)
    assert np.abs(_grey(shown) - server).max() <= 1
    assert len(np.unique(server)) > 50
    # not whole numbers: their min-max is LINEAR_EXACT, as the server's
    expect(page.locator("#vw-overlay-bl")).to_contain_text(_min_max_said(values))


def test_bits_above_bits_stored_are_not_shown(page, app_url, tmp_path):
    """A signed 12-bit image whose 16-bit words carry other bits above Bits Stored (an
    overlay plane of before 2004 in bit 12, noise in bit 15) and negative values without
    sign extension shows its own values, as the server renders it (PS3.5 8.1.1: only the
    bits up to High Bit are the value's). The words read whole would show the rectangle and
    every seventh pixel white, and negative values as large positive ones."""
    values = make_bits_above_stored(tmp_path / "bits.dcm", signed=True)
    shown = _opened_at_actual_size(page, _upload(app_url, [tmp_path / "bits.dcm"]))
    ds = pydicom.dcmread(tmp_path / "bits.dcm", stop_before_pixels=True)
    server = _rendered_as_stored(
        app_url, _token(app_url, "radiologist", "radio123"), ds, ds.SOPInstanceUID
    )
    assert (shown["width"], shown["height"]) == (128, 128)
    assert np.abs(_grey(shown) - server).max() == 0
    # the min-max window of its values (LINEAR, whole numbers), not of its words
    low, high = int(values.min()), int(values.max())
    assert (shown["state"]["wc"], shown["state"]["ww"]) == ((low + high) / 2 + 0.5, high - low + 1)


def test_a_float_map_of_a_small_range_shows_and_is_marked_as_seen(page, app_url, tmp_path):
    """A float map of values between about -0.004 and 0.006 shows by its min-max as the
    server renders it, in a LINEAR_EXACT window of its own numbers (seen: LINEAR, said as
    "WL 1 / WW 1"); dragging changes that window by steps its size allows (seen: 0.5 a
    pixel, a hundred times its width), and a key image marked there keeps its function."""
    values = make_float_map(tmp_path / "map.dcm", scale=0.001)
    study_id = _upload(app_url, [tmp_path / "map.dcm"])
    doctor = {"Authorization": f"Bearer {_token(app_url, 'radiologist', 'radio123')}"}
    assert httpx.post(f"{app_url}/studies/{study_id}/claim", headers=doctor).status_code == 200
    shown = _opened_at_actual_size(page, study_id)
    ds = pydicom.dcmread(tmp_path / "map.dcm", stop_before_pixels=True)
    server = _rendered_as_stored(app_url, doctor["Authorization"][7:], ds, ds.SOPInstanceUID)
    assert len(np.unique(server)) > 200
    assert np.abs(_grey(shown) - server).max() <= 1
    low, high = float(values.min()), float(values.max())
    view = shown["state"]
    assert view["wfn"] == "LINEAR_EXACT"
    assert view["ww"] == pytest.approx(high - low, rel=1e-6)
    expect(page.locator("#vw-overlay-bl")).to_contain_text(_min_max_said(values))
    box = page.locator("#vw-canvas").bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    _drag(page, middle, (middle[0] + 20, middle[1]), steps=4)
    dragged = _state(page)
    assert high - low < dragged["ww"] < 1.5 * (high - low)
    assert dragged["wfn"] == "LINEAR_EXACT"
    page.locator("#vw-stage").focus()
    page.keyboard.press("k")
    expect(page.locator("#vw-stage")).to_have_attribute("data-key", "1")
    [key] = httpx.get(f"{app_url}/studies/{study_id}/key-images", headers=doctor).json()
    assert key["window_function"] == "LINEAR_EXACT"
    assert key["window_width"] == pytest.approx(dragged["ww"], rel=1e-6)


def test_orientation_markers_name_the_patients_directions(page, app_url, tmp_path):
    """Each image shows the patient's direction at the middle of each edge, from its Image
    Orientation (Patient), an enhanced object's Plane Orientation or a radiograph's Patient
    Orientation, as the server's rule has them (``tests/dicom/test_orientation.py``, whose
    files these are); an image with neither shows none. (Seen: no markers at all, so an
    image stored upside down or reversed left to right could not be told from the screen.)
    The overlay says a slice's thickness and location, and a radiograph's side and view
    (seen: neither)."""
    if not all((TESTDATA / name).exists() for name in ORIENTED_FILES):
        pytest.skip(f"shared test data not found at {TESTDATA}")
    study_uid, series_uid, paths, shown = generate_uid(), generate_uid(), [], []
    for number, name in enumerate([*ORIENTED_FILES, ""], start=1):
        if name:
            ds = example(name)
            shown += [ORIENTED_FILES[name]] * int(ds.get("NumberOfFrames") or 1)
            if ds.Modality == "DX":  # it names the side (Image Laterality L), not the view
                ds.ViewPosition = "PA"
        else:  # neither: no markers
            ds = pydicom.dcmread(make_ct(tmp_path / "plain.dcm"))
            del ds.ImageOrientationPatient
            shown.append(("", "", "", ""))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.InstanceNumber = study_uid, series_uid, number
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientID, ds.PatientName = "ORIENT-01", "ORIENTATION^TEST"
        paths.append(tmp_path / f"{number}.dcm")
        ds.save_as(paths[-1])
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/viewer/{_upload(app_url, paths)}")
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    assert _state(page)["count"] == len(shown)
    for index, markers in enumerate(shown):
        page.evaluate(f"window.__pacsViewer.go({index})")
        expect(page.locator("#vw-stage")).to_have_attribute("data-index", str(index))
        for side, letters in zip(("top", "right", "bottom", "left"), markers, strict=True):
            expect(page.locator(f"#vw-orient-{side}")).to_have_text(letters)
    # and where the image is: a slice's thickness and location, a radiograph's side and view
    page.evaluate("window.__pacsViewer.go(0)")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("Thk 5 mm  Loc 32.36 mm")
    expect(page.locator("#vw-overlay-tr")).not_to_contain_text("Lat")
    page.evaluate(f"window.__pacsViewer.go({len(shown) - 2})")
    expect(page.locator("#vw-overlay-tr")).to_contain_text("Lat L  View PA")
    expect(page.locator("#vw-overlay-bl")).not_to_contain_text("Thk")
    # on the image's edges, clear of the corners' text
    page.evaluate("window.__pacsViewer.go(0)")
    expect(page.locator("#vw-orient-right")).to_have_text("L")
    stage = page.locator("#vw-stage").bounding_box()
    right = page.locator("#vw-orient-right").bounding_box()
    assert stage["x"] + stage["width"] - 40 < right["x"] < stage["x"] + stage["width"]
    assert abs(right["y"] + right["height"] / 2 - (stage["y"] + stage["height"] / 2)) < 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#vw-stage").screenshot(path=ARTIFACTS / "viewer-orientation.png")


def _edges_shown(page) -> tuple[str, ...]:
    return tuple(
        page.locator(f"#vw-orient-{side}").inner_text()
        for side in ("top", "right", "bottom", "left")
    )


def test_an_image_turned_and_mirrored_keeps_its_markers_and_measures(
    page, new_page, app_url, tmp_path
):
    """Rotate turns the image a quarter clockwise and Flip mirrors it left to right as seen;
    the pixels, the orientation markers and what is measured on it follow; a key image
    marked so keeps the turn (its print shows it); a reload keeps the turn and Reset undoes
    it."""
    path = make_ct(tmp_path / "wide.dcm", rows=96)  # not square: a quarter turn shows
    ds = pydicom.dcmread(path)
    study_id = _upload(app_url, [path])
    doctor = {"Authorization": f"Bearer {_token(app_url, 'radiologist', 'radio123')}"}
    assert httpx.post(f"{app_url}/studies/{study_id}/claim", headers=doctor).status_code == 200
    shown = _opened_at_actual_size(page, study_id)
    stored = _grey(shown)
    assert stored.shape == (96, 128)
    assert _edges_shown(page) == ("A", "L", "P", "R")

    page.click("#vw-rotate")
    expect(page.locator("#vw-overlay-br")).to_contain_text("turned 90°")
    page.click("#vw-actual")
    turned = page.evaluate(SHOWN_PIXELS)
    assert (turned["width"], turned["height"]) == (96, 128)
    assert np.array_equal(_grey(turned), np.rot90(stored, -1))
    assert _edges_shown(page) == ("R", "A", "L", "P")

    page.click("#vw-flip")  # left to right as seen: turned three quarters, mirrored
    expect(page.locator("#vw-overlay-br")).to_contain_text("mirrored")
    page.click("#vw-actual")
    assert (_state(page)["rot"], _state(page)["flip"]) == (3, True)
    assert np.array_equal(_grey(page.evaluate(SHOWN_PIXELS)), np.fliplr(np.rot90(stored, -1)))
    assert _edges_shown(page) == ("R", "P", "L", "A")

    # a line drawn across the screen runs down the stored image's columns now
    stage = page.locator("#vw-stage").bounding_box()
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.click("#vw-mode-measure")
    _drag(page, (cx - 40, cy), (cx + 40, cy), steps=6)
    p = _state(page)["measure"]["p"]
    assert abs(p[2] - p[0]) < 0.01 and abs(abs(p[3] - p[1]) - 80) < 0.01, p
    spacing = float(ds.PixelSpacing[0])
    measured = float(
        re.match(r"([\d.]+) mm", page.locator("#vw-stage").get_attribute("data-measure")).group(1)
    )
    assert abs(measured - 80 * spacing) < 0.05

    page.evaluate("window.__pacsViewer.setWindow(60, 420)")
    page.keyboard.press("k")
    expect(page.locator("#vw-stage")).to_have_attribute("data-key", "1")
    [key] = httpx.get(f"{app_url}/studies/{study_id}/key-images", headers=doctor).json()
    assert (key["rotation"], key["flipped"]) == (270, True)
    assert (key["window_center"], key["window_width"]) == (60, 420)
    # the report page's picture of it is turned so too (CSS: the mirror first)
    page.goto(f"/report/{study_id}")
    picture = page.locator(".key-image img")
    expect(picture).to_be_visible()
    matrix = picture.evaluate("(e) => getComputedStyle(e).transform")  # matrix(a, b, c, d, e, f)
    turned_so = [float(x) for x in re.findall(r"-?[\d.]+(?:e-?\d+)?", matrix)]
    assert np.allclose(turned_so, [0, 1, 1, 0, 0, 0], atol=1e-9), matrix  # x' = y, y' = x
    # a click on it shows it in the viewer beside the editor as it was marked, though that
    # viewer was reset: turned, mirrored, by its window
    beside = page.frame_locator("#report-viewer").locator("#vw-stage")
    expect(beside).to_have_attribute("data-ready", "1", timeout=30_000)
    beside.press("r")
    [frame] = [f for f in page.frames if "/viewer/" in f.url]
    frame.wait_for_function("window.__pacsViewer.state().rot === 0")
    picture.click()
    frame.wait_for_function(MARKED_SO, timeout=15_000)
    page.goto(f"/viewer/{study_id}")

    page.wait_for_timeout(400)  # the view is saved a moment after it changes
    page.reload()
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    assert (_state(page)["rot"], _state(page)["flip"]) == (3, True)
    assert _edges_shown(page) == ("R", "P", "L", "A")
    page.locator("#vw-stage").press("r")
    expect(page.locator("#vw-orient-right")).to_have_text("L")
    assert (_state(page)["rot"], _state(page)["flip"]) == (0, False)
    assert (_state(page)["wc"], _state(page)["ww"]) != (60, 420)
    # T turns a quarter clockwise, H flips left to right as seen, as the icons do
    page.locator("#vw-stage").press("t")
    expect(page.locator("#vw-orient-right")).to_have_text("A")
    page.locator("#vw-stage").press("h")
    expect(page.locator("#vw-orient-right")).to_have_text("P")
    assert (_state(page)["rot"], _state(page)["flip"]) == (3, True)
    page.locator("#vw-stage").press("r")
    expect(page.locator("#vw-orient-right")).to_have_text("L")

    # a length drawn on it again (R cleared the first), kept on the server
    stage = page.locator("#vw-stage").bounding_box()
    cx, cy = stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2
    page.click("#vw-mode-measure")
    _drag(page, (cx - 40, cy), (cx + 40, cy), steps=6)

    def kept() -> list:
        got = httpx.get(f"{app_url}/studies/{study_id}/drawn-measurements", headers=doctor)
        return [m["kind"] for items in got.json()["images"].values() for m in items]

    for _ in range(50):
        if kept() == ["length"]:
            break
        page.wait_for_timeout(100)
    assert kept() == ["length"]
    # signed: the key object selection filed with the study shows it as seen too, from the
    # presentation state filed beside it (a series of its own)
    series = _signed_series(app_url, study_id, doctor)
    assert sorted(s["modality"] for s in series) == ["CT", "KO", "PR"]
    [filed] = [s for s in series if s["modality"] == "KO"]
    page.reload()
    expect(page.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    page.locator(f'.vw-thumb[data-uid="{filed["series_instance_uid"]}"]').click()
    expect(page.locator("#vw-stage")).to_have_attribute("data-kind", "report", timeout=15_000)
    expect(page.locator(".vw-sr-show")).to_have_text("Show as seen")
    page.locator(".vw-sr-show").click()
    page.wait_for_function(MARKED_SO, timeout=15_000)
    assert _edges_shown(page) == ("R", "P", "L", "A")
    # with what it draws: the line measured on it (frozen at signing), and its words
    assert _state(page)["seenMarks"] == 2
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#vw-stage").screenshot(path=ARTIFACTS / "viewer-key-image-as-seen.png")
    # the presentation state itself is said to be one, and where to use it
    [views] = [s for s in series if s["modality"] == "PR"]
    assert views["description"] == "Key image views"
    page.locator(f'.vw-thumb[data-uid="{views["series_instance_uid"]}"]').click()
    expect(page.locator("#vw-message")).to_contain_text("This is a presentation state")
    # the centre's user, who has none of the reader's measurements, sees the state's line and
    # words (in green: not theirs to change)
    centre = new_page()
    sign_in(centre, "centre", "centre123")
    expect(centre.locator("#dashboard-centre")).to_be_visible()
    centre.goto(f"/viewer/{study_id}")
    expect(centre.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    centre.locator(f'.vw-thumb[data-uid="{filed["series_instance_uid"]}"]').click()
    centre.locator(".vw-sr-show").click()
    centre.wait_for_function(MARKED_SO, timeout=15_000)
    assert _state(centre)["measure"] is None and _state(centre)["seenMarks"] == 2
    centre.wait_for_function(f"({GREEN_PIXELS})() > 20", timeout=5_000)
    centre.locator("#vw-stage").screenshot(path=ARTIFACTS / "viewer-key-image-as-seen.png")


# the canvas' pixels in the colour the viewer draws a presentation state's marks with
GREEN_PIXELS = """() => { const c = document.getElementById("vw-canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 140 && d[i + 1] > 200 && d[i + 2] > 150) n++;
    return n; }"""

# the image marked key in the test above, shown as it was marked
MARKED_SO = """() => { const s = window.__pacsViewer && window.__pacsViewer.state();
    return !!s && s.rot === 3 && s.flip === true && s.wc === 60 && s.ww === 420; }"""


def test_viewer_explains_what_it_cannot_show(page, app_url, tmp_path):
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto("/viewer/NOSUCH00")
    expect(page.locator("#viewer-not-found")).to_contain_text("No study NOSUCH00")
    corrupt = TESTDATA / "malformed" / "JPEG2000-embedded-sequence-delimiter.dcm"
    if not corrupt.exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    study_id = _upload(app_url, [corrupt])
    page.goto(f"/viewer/{study_id}")
    expect(page.locator("#vw-message")).to_contain_text("cannot be decoded", timeout=30_000)
    # a VOI LUT without its data: said, as the server refuses to render it (not shown by a
    # window the device did not mean)
    ds = with_lut(make_cr(tmp_path / "cr.dcm"), "VOILUTSequence", range(4096), bits=12)
    del ds.VOILUTSequence[0].LUTData
    ds.save_as(tmp_path / "cr.dcm", enforce_file_format=True)
    page.goto(f"/viewer/{_upload(app_url, [tmp_path / 'cr.dcm'])}")
    expect(page.locator("#vw-message")).to_contain_text(
        "The image's VOI LUT has no LUT Descriptor or no LUT Data", timeout=30_000
    )
    # an RT structure set has no pixels: said plainly, with no window/level for an image that
    # is not there (in a study of its own: pydicom's test files share study UIDs)
    rtstruct = pydicom.dcmread(TESTDATA / "non_image" / "rtstruct.dcm", force=True)
    rtstruct.StudyInstanceUID = pydicom.uid.generate_uid()
    rtstruct.file_meta = pydicom.dataset.FileMetaDataset()  # the file has none
    rtstruct.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    rtstruct.file_meta.MediaStorageSOPClassUID = rtstruct.SOPClassUID
    rtstruct.file_meta.MediaStorageSOPInstanceUID = rtstruct.SOPInstanceUID
    rtstruct.save_as(tmp_path / "rtstruct-sent.dcm")
    study_id = _upload(app_url, [tmp_path / "rtstruct-sent.dcm"])
    # (opened straight after another study: the page is restored with that study's state
    # first, and the viewer must start again on this one, not stay on the last patient's)
    page.goto(f"/viewer/{study_id}")
    expect(page.locator("#vw-message")).to_contain_text(
        "This object is not an image (RTSTRUCT)", timeout=30_000
    )
    expect(page.locator(".vw-thumb")).to_have_count(1)
    expect(page.locator("#vw-stage")).to_have_attribute("data-kind", "other")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("not an image")
    expect(page.locator("#vw-overlay-bl")).not_to_contain_text("WL")
    expect(page.locator(".vw-thumb")).to_contain_text("not an image")
    # its file, as stored, can still be taken
    with page.expect_download() as download:
        page.click("#vw-download")
    saved = tmp_path / "rtstruct.dcm"
    download.value.save_as(saved)
    assert saved.read_bytes() == (tmp_path / "rtstruct-sent.dcm").read_bytes()
    assert download.value.suggested_filename.endswith(".dcm")


def _trace_rows(page, x: float, top: float, bottom: float) -> list[float]:
    """The CSS rows where the ECG canvas has its trace's colour in column ``x``."""
    return page.evaluate(
        """([x, top, bottom]) => {
            const c = document.getElementById("vw-wave-canvas"), dpr = c.width / c.clientWidth;
            const ctx = c.getContext("2d"), col = Math.floor(x * dpr);
            const data = ctx.getImageData(col, 0, 1, c.height).data, rows = [];
            for (let y = Math.floor(top * dpr); y < Math.ceil(bottom * dpr); y++) {
                const o = y * 4;
                if (data[o] > 160 && data[o + 1] > 160 && data[o + 2] > 160) rows.push(y / dpr);
            }
            return rows;
        }""",
        [x, top, bottom],
    )


def test_an_ecg_is_drawn_from_its_samples(page, app_url, tmp_path):
    source = TESTDATA / "non_image" / "waveform_ecg.dcm"
    if not source.exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    ecg = pydicom.dcmread(source)
    ecg.StudyInstanceUID = pydicom.uid.generate_uid()  # pydicom's test files share study UIDs
    ecg.save_as(tmp_path / "ecg-sent.dcm")
    study_id = _upload(app_url, [tmp_path / "ecg-sent.dcm"])
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/viewer/{study_id}")
    stage = page.locator("#vw-stage")
    expect(stage).to_have_attribute("data-kind", "waveform", timeout=30_000)
    expect(page.locator("#vw-wave-title")).to_have_text("12-lead ECG Waveform Storage")
    expect(page.locator("#vw-wave-scale")).to_contain_text(
        "RHYTHM · 12 channel(s) · 10 s at 1000 Hz · 25 mm/s · 10 mm/mV"
    )
    expect(page.locator("#vw-wave-notes")).to_contain_text("RITMO SINUSALE")
    expect(page.locator("#vw-wave-notes")).to_contain_text("QT Interval: 368 ms")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("waveform")
    expect(page.locator(".vw-thumb")).to_contain_text("waveform")
    expect(page.locator("#vw-message")).to_have_text("")

    # Lead II at its highest sample is drawn where 25 mm/s and 10 mm/mV put it
    canvas = page.locator("#vw-wave-canvas")
    mm, left, top, row = (
        float(canvas.get_attribute(f"data-{k}")) for k in ("mm", "left", "top", "row")
    )
    lead = ecg.waveform_array(0)[:, 1] / 1000  # mV
    peak = int(np.argmax(lead))
    x = left + peak / 1000 * 25 * mm
    middle = top + 1.5 * row
    expected_y = middle - lead[peak] * 10 * mm
    # (the other leads peak at the same moment: only the rows around Lead II's peak are read)
    rows = _trace_rows(page, x, expected_y - 10, expected_y + 10)
    assert rows, "no trace drawn in Lead II's column at its peak"
    assert abs(min(rows) - expected_y) <= 2, (rows, expected_y)
    # and where the trace is flat before it, it lies on the row's zero line
    quiet = int(np.argmin(np.abs(lead[:peak]) + np.abs(np.gradient(lead[:peak])) * 10))
    rows = _trace_rows(page, left + quiet / 1000 * 25 * mm, middle - row / 2, middle + row / 2)
    assert rows and abs(np.mean(rows) - (middle - lead[quiet] * 10 * mm)) <= 2
    page.screenshot(path=str(ARTIFACTS / "viewer-ecg.png"))
    # the tag browser narrows the stage: the recording is drawn again to the new width
    scale = canvas.get_attribute("data-mm")
    page.click("#vw-tags-toggle")
    page.wait_for_function(
        f"document.getElementById('vw-wave-canvas').getAttribute('data-mm') !== '{scale}'"
    )
    assert float(canvas.get_attribute("data-mm")) < mm
    page.click("#vw-tags-toggle")
    expect(canvas).to_have_attribute("data-mm", scale)

    # the median beat, a group of its own, on a click
    page.locator(".vw-wave-group", has_text="MEDIAN BEAT").click()
    expect(page.locator("#vw-wave-scale")).to_contain_text("MEDIAN BEAT · 12 channel(s) · 1.2 s")
    expect(page.locator(".vw-wave-group", has_text="MEDIAN BEAT")).to_have_attribute(
        "aria-pressed", "true"
    )
    # its file, as stored, can be taken from here too
    with page.expect_download() as download:
        page.click("#vw-download")
    saved = tmp_path / "ecg.dcm"
    download.value.save_as(saved)
    assert saved.read_bytes() == (tmp_path / "ecg-sent.dcm").read_bytes()


def test_overlay_planes_are_drawn_over_the_image_and_can_be_hidden(page, app_url, tmp_path):
    from tests.dicom_factory import make_overlaid_ct

    mark = np.zeros((40, 60), bool)  # an outline, as a modality marks a lesion
    mark[0, :] = mark[-1, :] = mark[:, 0] = mark[:, -1] = True
    path = make_overlaid_ct(tmp_path / "ov.dcm", mark, origin=(21, 31), label="LESION")
    study_id = _upload(app_url, [path])
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/viewer/{study_id}")
    stage = page.locator("#vw-stage")
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(stage).to_have_attribute("data-overlays", "shown")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("Overlay: LESION")
    page.evaluate("window.__pacsViewer.setWindow(60, 420)")
    page.click("#vw-actual")
    page.wait_for_timeout(200)
    view = _state(page)

    def on_screen() -> np.ndarray:
        shot = tmp_path / "canvas.png"
        page.locator("#vw-canvas").screenshot(path=str(shot))
        canvas = np.asarray(Image.open(shot).convert("L"))
        return canvas[view["panY"] : view["panY"] + 128, view["panX"] : view["panX"] + 128]

    # as the server renders it (the overlay burnt in), where the plane says
    token = _token(app_url, "radiologist", "radio123")
    ds = pydicom.dcmread(path)
    server = _server_rendering(
        app_url,
        token,
        f"{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}",
    )
    shown = on_screen()
    assert (np.abs(shown.astype(int) - server.astype(int)) > 1).mean() <= 0.005
    outline = np.zeros((128, 128), bool)
    outline[20:60, 30:90] = mark
    assert (shown[outline] >= 254).all() and (server[outline] == 255).all()

    stage.press("o")  # hidden: the image beneath shows
    expect(stage).to_have_attribute("data-overlays", "hidden")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("Overlay: hidden (O shows)")
    page.wait_for_timeout(100)
    assert (on_screen()[outline] < 250).mean() > 0.5
    page.click("#vw-overlays")
    expect(stage).to_have_attribute("data-overlays", "shown")
    page.wait_for_timeout(100)
    assert (on_screen()[outline] >= 254).all()


def _report_on(ct: pydicom.Dataset, path: Path, observer: str) -> Path:
    """The shared TID 1500 measurement report, moved onto ``ct``'s study: its measurement
    refers to ``ct``, and its observer's name is ``observer``."""
    ds = pydicom.dcmread(TESTDATA / "non_image" / "SR_TID1500_highdicom.dcm")
    old_sop = pydicom.examples.ct.SOPInstanceUID
    ds.StudyInstanceUID = ct.StudyInstanceUID
    ds.PatientName, ds.PatientID = ct.PatientName, ct.PatientID
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()

    def walk(items):
        for item in items:
            for ref in item.get("ReferencedSOPSequence", []):
                if ref.ReferencedSOPInstanceUID == old_sop:
                    ref.ReferencedSOPInstanceUID = ct.SOPInstanceUID
            if item.get("ConceptNameCodeSequence") and (
                item.ConceptNameCodeSequence[0].CodeMeaning == "Person Observer Name"
            ):
                item.TextValue = observer
            walk(item.get("ContentSequence", []))

    walk([ds])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_a_structured_report_reads_as_a_document_and_opens_its_image(page, app_url, tmp_path):
    if not (TESTDATA / "non_image").exists():
        pytest.skip(f"shared test data not found at {TESTDATA}")
    [ct_path] = make_series(tmp_path / "ct", 1, patient_name="SR^VIEWER", patient_id="SR-01")
    ct = pydicom.dcmread(ct_path)
    markup = '<img src="x" onerror="window.__injected = 1">Dr Foo'
    report_path = _report_on(ct, tmp_path / "sr.dcm", markup)
    report = pydicom.dcmread(report_path)
    study_id = _upload(app_url, [ct_path, report_path])
    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.goto(f"/viewer/{study_id}")
    stage = page.locator("#vw-stage")
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    sr_thumb = page.locator(f'.vw-thumb[data-uid="{report.SeriesInstanceUID}"]')
    expect(sr_thumb).to_contain_text("structured report")
    sr_thumb.click()

    expect(stage).to_have_attribute("data-kind", "report", timeout=15_000)
    expect(page.locator("#vw-sr-title")).to_have_text("Imaging Measurement Report")
    expect(page.locator("#vw-sr-flags")).to_contain_text("Completion: PARTIAL")
    expect(page.locator("#vw-sr-flags")).to_contain_text("Verification: UNVERIFIED")
    expect(page.locator('[data-position="1.8.1.6"]')).to_contain_text(
        "Area of defined region: 1.7 cm2"
    )
    expect(page.locator('[data-position="1.8.1.3"]')).to_contain_text("Finding: Spinal cord")
    expect(page.locator("#vw-overlay-bl")).to_contain_text("structured report")
    expect(page.locator("#vw-overlay-bl")).not_to_contain_text("WL")
    # the sender's text is shown as text, never run as markup
    expect(page.locator('[data-position="1.3"]')).to_contain_text(markup)
    assert page.evaluate("window.__injected") is None
    assert page.locator("#vw-document img").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-structured-report.png"))

    # the measured image opens from the report
    page.locator('[data-position="1.8.1.4.1"] .vw-sr-show').click()
    expect(stage).to_have_attribute("data-kind", "image", timeout=15_000)
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(page.locator("#vw-document")).to_be_hidden()
    assert _state(page)["sop"] == ct.SOPInstanceUID
    expect(page.locator("#vw-overlay-bl")).to_contain_text("WL")

    # a measurement stays with its image while another series is looked at; R clears it
    page.click("#vw-mode-measure")
    box = stage.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    _drag(page, (cx - 50, cy), (cx + 50, cy), steps=4)
    measured = stage.get_attribute("data-measure")
    assert page.evaluate("window.__pacsViewer.measures()") == ["length"]
    sr_thumb.click()
    expect(stage).to_have_attribute("data-kind", "report", timeout=15_000)
    page.locator(f'.vw-thumb[data-uid="{ct.SeriesInstanceUID}"]').click()
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(stage).to_have_attribute("data-kind", "image")
    assert page.evaluate("window.__pacsViewer.measures()") == ["length"]
    expect(page.locator("#vw-overlay-br")).to_contain_text(measured)
    # and a reload (the tab keeps them)
    page.reload()
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    assert _state(page)["sop"] == ct.SOPInstanceUID
    assert page.evaluate("window.__pacsViewer.measures()") == ["length"]
    expect(page.locator("#vw-overlay-br")).to_contain_text(measured)
    stage.focus()
    page.keyboard.press("r")
    assert page.evaluate("window.__pacsViewer.measures()") == []
    page.reload()
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    assert page.evaluate("window.__pacsViewer.measures()") == []


def test_studies_of_two_centres_with_one_uid_each_show_their_own_images(page, app_url, tmp_path):
    """The same StudyInstanceUID at two centres (other pixels, another patient): the admin,
    who may see both, opens each in the viewer and sees that study's own image."""
    code = "U" + uuid.uuid4().hex[:5].upper()
    uids = {"study_uid": generate_uid(), "series_uid": generate_uid(), "sop_uid": generate_uid()}
    ids = {}
    with httpx.Client(base_url=app_url, timeout=60) as client:
        centre_with_technician(client, f"Twin {code}", code, "twin-centre-pass-1")
        for username, password, size in (
            ("technician", "tech123", None),
            (code.lower(), "twin-centre-pass-1", 128),
        ):
            path = make_ct(tmp_path / f"{username}.dcm", patient_name="TWIN^UID", size=size, **uids)
            r = client.post(
                "/studies",
                headers={"Authorization": f"Bearer {_token(app_url, username, password)}"},
                files=[("files", (path.name, path.read_bytes(), "application/dicom"))],
            )
            r.raise_for_status()
            ids[username] = r.json()["study_id"]

    sign_in(page, "admin", "admin123")
    expect(page.locator("#dashboard-admin")).to_be_visible()
    token = _token(app_url, "admin", "admin123")
    renderings = []
    for study_id in ids.values():
        _, on_screen = _shown_at_window(page, study_id, tmp_path / f"{study_id}.png")
        server = _server_rendering(
            app_url,
            token,
            f"{uids['study_uid']}/series/{uids['series_uid']}/instances/{uids['sop_uid']}/frames/1",
            study_id=study_id,
        )
        off = np.abs(on_screen.astype(int) - server.astype(int)) > 1
        assert off.mean() <= 0.005, f"{study_id}: {off.mean():.2%} of pixels differ"
        renderings.append(server)
    # the two studies' images are not alike, so the viewer could not have shown one for both
    assert (np.abs(renderings[0].astype(int) - renderings[1].astype(int)) > 1).mean() > 0.5


def test_two_windows_of_one_reader_keep_each_others_measurements(page, app_url, tmp_path):
    """One radiologist with the study open in two windows (the report page's viewer on one
    screen, a full viewer on the other): what each draws or deletes is kept, never lost to
    the other window's save."""
    study_id = _upload(app_url, make_series(tmp_path / "two", 3, patient_id="VW-TWO"))
    token = _token(app_url, "radiologist", "radio123")
    url = f"{app_url}/studies/{study_id}/drawn-measurements"

    def kept() -> dict:
        r = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        return r.json()

    def wait_kept(revision: int) -> list:
        for _ in range(100):
            now = kept()
            if now["revision"] == revision:
                return [m["kind"] for ms in now["images"].values() for m in ms]
            page.wait_for_timeout(100)
        raise AssertionError(f"revision {revision} never kept: {kept()}")

    def measure(window, dx: int) -> None:
        stage = window.locator("#vw-stage")
        window.click("#vw-mode-measure")
        box = stage.bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        _drag(window, (cx - 50, cy + dx), (cx + 50, cy + dx), steps=4)

    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    windows = [page, page.context.new_page()]  # one browser: the same sign-in
    for window in windows:
        window.goto(f"/viewer/{study_id}")
        expect(window.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    one, two = windows
    shows = "window.__pacsViewer.measures().length === {}"
    # the second window's saves, by their answers (409: another window saved since)
    answers = []
    two.on(
        "response",
        lambda r: (
            answers.append(r.status)
            if "drawn-measurements" in r.url and r.request.method == "PUT"
            else None
        ),
    )

    # the first window draws a length; the second, opened before that was kept, draws another
    measure(one, 0)
    assert wait_kept(1) == ["length"]
    measure(two, 40)
    # its save from revision 0 was refused with the first one's, merged, and saved again
    assert wait_kept(2) == ["length", "length"]
    two.wait_for_function(shows.format(2))
    # each window says what another's save changed in it
    said = "Measurements saved from another window of yours: {} here."
    expect(two.locator("#vw-notice")).to_have_text(said.format("1 added"))
    # back in the first window, the second's is shown too
    one.bring_to_front()
    one.evaluate("window.dispatchEvent(new Event('focus'))")
    one.wait_for_function(shows.format(2))
    expect(one.locator("#vw-notice")).to_have_text(said.format("1 added"))

    # the first deletes the image's measurements (R); the second, not yet told, draws a third:
    # the two deleted stay deleted, the third is kept
    one.locator("#vw-stage").focus()
    one.keyboard.press("r")
    assert wait_kept(3) == []
    measure(two, -40)
    assert wait_kept(4) == ["length"]
    two.wait_for_function(shows.format(1))
    expect(two.locator("#vw-notice")).to_have_text(said.format("2 deleted"))
    # each of its two saves was refused once and merged (the window was not told before)
    for _ in range(50):
        if len(answers) >= 4:
            break
        two.wait_for_timeout(100)
    assert answers == [409, 200, 409, 200]
    one.reload()
    expect(one.locator("#vw-stage")).to_have_attribute("data-ready", "1", timeout=30_000)
    assert one.evaluate("window.__pacsViewer.measures()") == ["length"]
    ids = [m["id"] for ms in kept()["images"].values() for m in ms]
    assert len(ids) == 1 and re.fullmatch(r"[0-9a-f]{16}", ids[0])


def test_a_study_opened_while_the_last_one_still_loads_is_shown_whole(
    page, new_page, app_url, tmp_path
):
    """The viewer's stage given another study while the last one's images are still on their
    way, as when the page is restored with the last study's state first and then loads this
    one's, or the report page's viewer switches to a prior: the last study's late answers
    neither ask for its metadata under this study's ID nor blank this study.

    The slow link is made by holding the first study's answers back in the browser
    (Playwright's request routing), and the switch by giving the stage the second study's
    data as the page does: neither timing can be had reliably otherwise here."""
    first = _upload(app_url, make_series(tmp_path / "a", 3, patient_name="SLOW^FIRST"))
    second = _upload(app_url, make_series(tmp_path / "b", 2, patient_name="QUICK^SECOND"))
    token = _token(app_url, "radiologist", "radio123")
    first_uid = httpx.get(
        f"{app_url}/studies/{first}", headers={"Authorization": f"Bearer {token}"}
    ).json()["study_instance_uid"]
    other = new_page()
    sign_in(other, "radiologist", "radio123")
    expect(other.locator("#dashboard-radiologist")).to_be_visible()
    other.goto(f"/viewer/{second}")
    second_data = other.locator("#vw-stage").get_attribute("data-study")

    asked: list[str] = []
    held: list = []
    holding = [True]

    def hold(route):
        asked.append(route.request.url)
        if holding[0]:
            held.append(route)  # answered when the test releases it
        else:
            route.continue_()

    sign_in(page, "radiologist", "radio123")
    expect(page.locator("#dashboard-radiologist")).to_be_visible()
    page.route(re.compile(rf".*/dicomweb/studies/{re.escape(first_uid)}/.*"), hold)
    page.goto(f"/viewer/{first}")
    stage = page.locator("#vw-stage")
    expect(page.locator("#vw-overlay-tl")).to_contain_text("SLOW FIRST")
    for _ in range(300):  # the first study's first image is on its way, held
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "the viewer asked nothing of the first study"
    page.evaluate(
        "data => document.getElementById('vw-stage').setAttribute('data-study', data)",
        second_data,
    )
    expect(stage).to_have_attribute("data-ready", "1", timeout=30_000)
    expect(page.locator("#vw-overlay-tl")).to_contain_text("QUICK SECOND")
    holding[0] = False
    for route in held:  # the first study's late answers arrive
        route.continue_()
    page.wait_for_timeout(3_000)
    expect(stage).to_have_attribute("data-ready", "1")
    expect(page.locator("#vw-message")).to_have_text("")
    expect(page.locator("#vw-overlay-tl")).to_contain_text("QUICK SECOND")
    assert page.evaluate("window.__pacsViewer.state().count") == 2
    # nothing asked of the first study named the second one
    assert asked and not [url for url in asked if f"study_id={second}" in url], asked
