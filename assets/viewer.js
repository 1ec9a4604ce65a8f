// Diagnostic viewer for the /viewer/<study> page (plain browser JavaScript, no build step).
//
// Pixel data comes once per frame from the backend's WADO-RS API (uncompressed frames, the
// Modality LUT applied here from the metadata); window/level, zoom, pan, scrolling, cine and
// measurement then run locally with no request per mouse move. Windowing follows PS3.3
// C.11.2.1.2 exactly as the server's renderer does, MONOCHROME1 is inverted. Overlay planes
// (60xx,3000) come per frame from the server and are drawn in white over the image, as the
// server's rendered images have them; O or the Overlays button hides and shows them.
// Structured reports (SR, Key Object Selection) show as their content tree, read by the
// server, in a document panel over the stage; an item that refers to an image of the study
// opens it.
(function () {
  "use strict";
  if (window.__pacsViewerLoaded) return;
  window.__pacsViewerLoaded = true;

  // Inside the report page's split view: the viewer alone, without the app's sidebar and
  // header (the report page around it has them).
  if (window.self !== window.top) {
    var style = document.createElement("style");
    style.textContent = "#sidebar, #page-header { display: none !important; }";
    document.head.appendChild(style);
  }

  var CT_PRESETS = [
    ["Lung", -600, 1500], ["Mediastinum", 50, 350], ["Bone", 400, 1800],
    ["Brain", 40, 80], ["Abdomen", 40, 400]];
  var SR_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.88.";
  var WAVEFORM_CLASS_ROOT = "1.2.840.10008.5.1.4.1.1.9.";
  var PREFETCH_AHEAD = 12, PREFETCH_BEHIND = 6, PARALLEL = 4;
  var V = null; // the viewer of the current page

  function $(id) { return document.getElementById(id); }
  function token() { return localStorage.getItem("pacs_token") || ""; }

  // --- DICOM JSON helpers ----------------------------------------------------------------
  function val(meta, tag, i) {
    var e = meta && meta[tag];
    if (!e || !e.Value || e.Value.length <= (i || 0)) return undefined;
    return e.Value[i || 0];
  }
  function num(meta, tag, i, dflt) {
    var v = val(meta, tag, i);
    if (v === undefined || v === null || v === "") return dflt;
    var n = Number(v);
    return isNaN(n) ? dflt : n;
  }
  function group(meta, frame, seqTag) {
    // enhanced objects: per-frame functional group first, then the shared one
    var per = val(meta, "52009230", frame);
    if (per && per[seqTag] && per[seqTag].Value) return per[seqTag].Value[0];
    var shared = val(meta, "52009229", 0);
    if (shared && shared[seqTag] && shared[seqTag].Value) return shared[seqTag].Value[0];
    return null;
  }
  function text(meta, tag) {
    var v = val(meta, tag);
    if (v === undefined || v === null) return "";
    if (typeof v === "object" && v.Alphabetic !== undefined) return String(v.Alphabetic).replace(/\^/g, " ");
    return String(v);
  }

  // --- HTTP --------------------------------------------------------------------------------
  function api(path) { return (V.stage.getAttribute("data-api") || "") + path; }
  // view: the viewer state the request is for (the current one unless given): a request of a
  // study that loads on after the stage was given another study must still name its own
  async function get(path, accept, method, view) {
    var v = view || V;
    if (v && path.indexOf("/dicomweb/") === 0) {
      // the study by its Study ID: studies of two centres can share a StudyInstanceUID, and
      // the images shown must be this one's
      path += (path.indexOf("?") < 0 ? "?" : "&") + "study_id=" + encodeURIComponent(v.study.study_id);
      // another study of the patient, shown beside the one read: each request says which
      if (v.study.comparing) path += "&for=" + encodeURIComponent(v.study.comparing);
    }
    var res = await fetch(api(path), { method: method || "GET",
      headers: { Authorization: "Bearer " + token(), Accept: accept || "*/*" } });
    if (!res.ok) {
      var detail = await detailOf(res);
      if (res.status === 401) detail = "Your session has ended: sign in again.";
      var err = new Error(detail || ("The server answered " + res.status));
      err.status = res.status;
      throw err;
    }
    return res;
  }
  // what an error answer says (its JSON "detail"), or ""
  async function detailOf(res) {
    try { return (await res.json()).detail; } catch (e) { return ""; }
  }
  function firstPart(buffer, contentType) {
    var m = /boundary=("?)([^";]+)\1/.exec(contentType || "");
    var bytes = new Uint8Array(buffer);
    if (!m) return bytes;
    var start = -1;
    for (var i = 0; i < bytes.length - 3; i++) {
      if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) { start = i + 4; break; }
    }
    var tail = 2 + 2 + m[2].length + 2 + 2; // \r\n--boundary--\r\n
    return bytes.slice(start, bytes.length - tail);
  }

  // the WADO-RS path of an image's instance, in the open series
  function instancePath(img) {
    return "/dicomweb/studies/" + V.study.study_uid + "/series/" + V.series.uid + "/instances/" + img.sop;
  }

  // --- images ------------------------------------------------------------------------------
  function makeImages(metas) {
    var images = [];
    metas.forEach(function (meta) {
      var frames = Math.max(1, num(meta, "00280008", 0, 1));
      for (var f = 0; f < frames; f++) images.push({ meta: meta, frame: f });
    });
    images.sort(function (a, b) {
      return (num(a.meta, "00200013", 0, 0) - num(b.meta, "00200013", 0, 0)) || (a.frame - b.frame);
    });
    images.forEach(function (img) {
      var m = img.meta;
      img.sop = val(m, "00080018");
      img.rows = num(m, "00280010", 0, 0);
      img.cols = num(m, "00280011", 0, 0);
      img.samples = num(m, "00280002", 0, 1);
      img.bits = num(m, "00280100", 0, 16);
      // Float (32 bits) or Double Float Pixel Data (64): the metadata leaves the pixel data
      // element out, but a floating point image has no Bits Stored (PS3.3 C.7.6.3: it is
      // required where Pixel Data is present)
      img.float = (img.bits === 32 || img.bits === 64) && !m["00280101"];
      img.signed = num(m, "00280103", 0, 0) === 1;
      img.photometric = text(m, "00280004");
      var pvt = group(m, img.frame, "00289145");
      // the Modality LUT, as the server applies it (pixels.modality_values): the frame's
      // rescale, else the Modality LUT Sequence, else the image's rescale
      var rescale = pvt && pvt["00281053"] ? pvt : m;
      img.slope = num(rescale, "00281053", 0, 1);
      img.intercept = num(rescale, "00281052", 0, 0);
      img.modalityLut = rescale === pvt ? null : lutSpec(m, "00283000");
      // the VOI LUT shown where the reader chose no window (pixels.voi_table): the first of
      // the VOI LUT Sequence, unless the frame has VOI values of its own
      img.voiLut = group(m, img.frame, "00289132") ? null : lutSpec(m, "00283010");
      var voi = group(m, img.frame, "00289132") || m;
      // the VOI LUT Function the windows are applied with, the reader's too (PS3.3 C.11.2)
      var fn = (text(voi, "00281056") || text(m, "00281056")).trim().toUpperCase();
      img.voiFunction = fn === "SIGMOID" || fn === "LINEAR_EXACT" ? fn : "LINEAR";
      img.windows = [];
      var centers = (voi["00281050"] && voi["00281050"].Value) || [];
      var widths = (voi["00281051"] && voi["00281051"].Value) || [];
      var names = (voi["00281055"] && voi["00281055"].Value) || [];
      for (var i = 0; i < Math.min(centers.length, widths.length); i++) {
        // LINEAR's width at least 1, the others' above 0 (pixels.Window)
        if (Number(widths[i]) >= (img.voiFunction === "LINEAR" ? 1 : Number.MIN_VALUE)) img.windows.push([names[i] || ("Header " + (i + 1)), Number(centers[i]), Number(widths[i])]);
      }
      var measures = group(m, img.frame, "00289110");
      var spacing = (measures && measures["00280030"] && measures["00280030"].Value) ||
        (m["00280030"] && m["00280030"].Value) || (m["00181164"] && m["00181164"].Value) || null;
      img.spacing = spacing ? [Number(spacing[0]), Number(spacing[1])] : null;
      img.hasOverlays = Object.keys(m).some(isOverlayData);
      img.orientation = orientationOf(m, img.frame);
      // where it is: the slice's thickness and location; the side imaged (the frame's, the
      // image's, else the series' laterality: R, L or B for both) and the view (AP, PA, CC...)
      var thickness = (measures && measures["00180050"]) ? num(measures, "00180050", 0, null) : num(m, "00180050", 0, null);
      var location = num(m, "00201041", 0, null);
      img.slice = [thickness ? "Thk " + millimetres(thickness) + " mm" : "", location !== null ? "Loc " + millimetres(location) + " mm" : ""]
        .filter(Boolean).join("  ");
      var anatomy = group(m, img.frame, "00209071");
      var side = (text(anatomy || {}, "00209072") || text(m, "00200062") || text(m, "00200060")).trim().toUpperCase();
      var viewPosition = text(m, "00185101").trim();
      img.projection = [side === "R" || side === "L" || side === "B" ? "Lat " + side : "", viewPosition ? "View " + viewPosition : ""]
        .filter(Boolean).join("  ");
      img.unit = valueUnit(m, pvt);
      // structured reports (SR, Key Object Selection) show as a document, waveforms as
      // their traces; other objects without pixel data (RT structure sets) can't be shown here
      var sopClass = String(val(m, "00080016") || "");
      img.isReport = sopClass.indexOf(SR_CLASS_ROOT) === 0;
      img.notImage = !img.isReport && !(img.rows && img.cols);
      // waveforms (ECG...) have no pixels either: drawn from their samples (until that fails)
      img.isWaveform = img.notImage && (sopClass.indexOf(WAVEFORM_CLASS_ROOT) === 0 || !!m["54000100"]);
    });
    return images;
  }

  // a length as the overlay says it: to a hundredth, without trailing zeros
  function millimetres(x) { return String(Math.round(x * 100) / 100); }

  // --- orientation markers ----------------------------------------------------------------
  // The patient's directions at the edges of the image, as orientation.edges has them (the
  // report's PDF prints them on its key images): where its rows run (right edge) and its
  // columns (bottom edge), and their opposites, from the frame's Image Orientation (Patient)
  // (PS3.3 C.7.6.2.1.1; an enhanced object's per-frame or shared Plane Orientation), else
  // from Patient Orientation (C.7.6.1.1.1: projection radiographs). The patient's axes are x
  // to the left, y to the back, z to the head: L/R, P/A, H/F. An oblique direction names up
  // to three, the largest component first (as pixelmed, OHIF and Horos write it: "PF" for a
  // gantry tilt), leaving out components under 0.0001 (rounding).
  var AXIS_LETTERS = [["R", "L"], ["A", "P"], ["F", "H"]];  // each axis's negative, positive
  var OPPOSITE_LETTER = { L: "R", R: "L", A: "P", P: "A", H: "F", F: "H" };
  function directionLetters(v) {
    var out = "", size = v.map(Math.abs);
    for (var k = 0; k < 3; k++) {
      var axis = -1;
      for (var a = 0; a < 3; a++) if (size[a] > 0.0001 && (axis < 0 || size[a] > size[axis])) axis = a;
      if (axis < 0) break;
      out += AXIS_LETTERS[axis][v[axis] < 0 ? 0 : 1];
      size[axis] = 0;
    }
    return out;
  }
  function orientationOf(m, frame) {
    var source = group(m, frame, "00209116") || m;  // an enhanced object's Plane Orientation
    var cosines = source["00200037"] && source["00200037"].Value;
    if (cosines && cosines.length === 6) {
      var v = cosines.map(Number);
      if (v.every(isFinite)) {
        var row = v.slice(0, 3), col = v.slice(3);
        var minus = function (x) { return -x; };
        var right = directionLetters(row), bottom = directionLetters(col);
        if (right && bottom) return { right: right, left: directionLetters(row.map(minus)),
          bottom: bottom, top: directionLetters(col.map(minus)) };
      }
    }
    // a biped's letters only (a quadruped's, C.7.6.1.1.1, have no opposites here)
    var named = (m["00200020"] && m["00200020"].Value) || [];
    if (named.length === 2 && named.every(function (x) { return /^[LRAPHF]{1,3}$/.test(String(x)); })) {
      var opposite = function (x) { return String(x).split("").map(function (c) { return OPPOSITE_LETTER[c]; }).join(""); };
      return { right: String(named[0]), left: opposite(named[0]), bottom: String(named[1]), top: opposite(named[1]) };
    }
    return null;
  }

  // The unit of the modality values (after the rescale): Hounsfield units for CT unless its
  // Rescale Type says otherwise; else what Rescale Type names, where it names one ("US" is
  // unspecified).
  function valueUnit(m, pvt) {
    var type = text(pvt || {}, "00281054") || text(m, "00281054");
    if (type && type !== "US") return type;
    return !type && text(m, "00080060") === "CT" ? "HU" : "";
  }

  // (60xx,3000) Overlay Data of an overlay plane: groups 6000 to 601E, even
  function isOverlayData(tag) {
    if (tag.length !== 8 || tag.slice(4).toUpperCase() !== "3000") return false;
    var g = parseInt(tag.slice(0, 4), 16);
    return g >= 0x6000 && g <= 0x601e && g % 2 === 0;
  }

  // The frame's overlay planes as one canvas of the image's size: white where a bit is set.
  async function loadOverlays(img) {
    var path = instancePath(img) + "/frames/" + (img.frame + 1) + "/overlays";
    var planes = await (await get(path, "application/json")).json();
    var canvas = document.createElement("canvas");
    canvas.width = img.cols; canvas.height = img.rows;
    var ctx = canvas.getContext("2d"), data = ctx.createImageData(img.cols, img.rows), out = data.data;
    planes.forEach(function (plane) {
      var bits = atob(plane.bits), top = plane.origin[0] - 1, left = plane.origin[1] - 1;
      for (var r = 0; r < plane.rows; r++) {
        var y = top + r;
        if (y < 0 || y >= img.rows) continue;
        for (var c = 0; c < plane.columns; c++) {
          var x = left + c, i = r * plane.columns + c;
          if (x < 0 || x >= img.cols || !((bits.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1)) continue;
          var o = (y * img.cols + x) * 4;
          out[o] = out[o + 1] = out[o + 2] = out[o + 3] = 255;
        }
      }
    });
    ctx.putImageData(data, 0, 0);
    img.overlays = { canvas: canvas, count: planes.length,
      names: planes.map(function (p) { return p.label || p.description || ("plane " + p.group); }) };
    return img;
  }

  async function loadPixels(img) {
    if (img.values || img.rgba) return img;
    if (img.loading) return img.loading;
    img.loading = (async function () {
      var path = instancePath(img) + "/frames/" + (img.frame + 1);
      var n = img.rows * img.cols;
      if (isColour(img)) {
        img.rgba = await colourPixels(img, path);
      } else {
        var res = await get(path, 'multipart/related; type="application/octet-stream"');
        var bytes = firstPart(await res.arrayBuffer(), res.headers.get("content-type"));
        var buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
        var raw;
        if (img.bits === 1) raw = unpackBits(new Uint8Array(buf), n);
        else if (img.float) raw = img.bits === 64 ? new Float64Array(buf) : new Float32Array(buf);
        else if (img.bits > 16) raw = img.signed ? new Int32Array(buf) : new Uint32Array(buf);
        else if (img.bits > 8) raw = img.signed ? new Int16Array(buf) : new Uint16Array(buf);
        else raw = img.signed ? new Int8Array(buf) : new Uint8Array(buf);
        await loadLut(img, img.modalityLut);
        await loadLut(img, img.voiLut);
        var values = new Float32Array(n), mlut = img.modalityLut;
        var lo = Infinity, hi = -Infinity, whole = true;
        for (var i = 0; i < n; i++) {
          var v = mlut ? lutValue(mlut, raw[i]) : raw[i] * img.slope + img.intercept;
          values[i] = v;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
          if (whole && v !== Math.floor(v)) whole = false;
        }
        img.values = values; img.min = lo; img.max = hi; img.whole = whole;
      }
      if (img.hasOverlays && !img.overlays) {
        // the image shows without them; they follow, and a failure is said in the overlay text
        loadOverlays(img).then(function () { if (V && V.images[V.index] === img) draw(); })
          .catch(function (e) { img.overlays = { error: e.message, count: 0, names: [] }; if (V && V.images[V.index] === img) draw(); });
      }
      return img;
    })();
    try { return await img.loading; } catch (e) { img.loading = null; img.error = e; throw e; }
  }

  // A Modality or VOI LUT of the metadata (PS3.3 C.11.1.1, C.11.2.1.1), read as the server
  // reads it (pixels.LookupTable): entries that map the values first, first + 1, ...; values
  // below take the first entry, those past the last the last one. Its data (a list of numbers,
  // InlineBinary or a BulkDataURI) is loaded with the pixels (loadLut), once for all the
  // frames of the instance.
  var LUT_SPECS = new WeakMap();  // metadata -> its LUTs (not in it: the tag browser lists it)
  function lutSpec(m, seqTag) {
    var known = LUT_SPECS.get(m);
    if (!known) { known = {}; LUT_SPECS.set(m, known); }
    if (!(seqTag in known)) known[seqTag] = readLutSpec(m, seqTag);
    return known[seqTag];
  }
  function readLutSpec(m, seqTag) {
    var items = m[seqTag] && m[seqTag].Value;
    if (!items || !items.length || !items[0]) return null;
    var item = items[0], d = (item["00283002"] && item["00283002"].Value) || [];
    // one that cannot be read is said, as the server refuses to render it
    if (d.length < 3 || !item["00283006"]) return { seq: seqTag, broken: true, explanation: "" };
    var first = Number(d[1]);
    if (first >= 32768 && num(m, "00280103", 0, 0) === 1) first -= 65536;  // written as US
    return { seq: seqTag, count: Number(d[0]) || 65536, first: first, bits: Number(d[2]),
      data: item["00283006"], explanation: text(item, "00283003").trim(), entries: null };
  }
  var LUT_NAMES = { "00283000": "Modality LUT", "00283010": "VOI LUT" };
  function loadLut(img, lut) {
    if (!lut || lut.entries) return null;
    if (!lut.loading) lut.loading = readLut(img, lut).catch(function (e) { lut.loading = null; throw e; });
    return lut.loading;
  }
  async function readLut(img, lut) {
    if (lut.broken) throw new Error("The image's " + LUT_NAMES[lut.seq] + " has no LUT Descriptor or no LUT Data: it cannot be shown.");
    var d = lut.data, bytes = null, entries;
    if (!(lut.bits >= 1 && lut.bits <= 16)) throw new Error("The image's " + LUT_NAMES[lut.seq] + " has entries of " + lut.bits + " bits (1 to 16 allowed).");
    if (d.Value) entries = d.Value.map(function (v) { return Number(v) & 0xffff; });
    else if (d.InlineBinary) bytes = Uint8Array.from(atob(d.InlineBinary), function (c) { return c.charCodeAt(0); });
    else if ("BulkDataURI" in d) {  // (empty in the opening image's metadata: the path is known)
      var res = await get(instancePath(img) + "/bulk/" + lut.seq + "/1/00283006", 'multipart/related; type="application/octet-stream"');
      bytes = firstPart(await res.arrayBuffer(), res.headers.get("content-type"));
    } else entries = [];
    if (bytes) {
      if (lut.bits <= 8 && (bytes.length === lut.count || bytes.length === lut.count + 1)) entries = Array.from(bytes);
      else {
        var view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        entries = [];
        for (var i = 0; i + 1 < bytes.length; i += 2) entries.push(view.getUint16(i, true));  // little endian
      }
    }
    entries = entries.slice(0, lut.count);
    if (!entries.length) throw new Error("The image's " + LUT_NAMES[lut.seq] + " has no data.");
    var mask = Math.pow(2, lut.bits) - 1;
    lut.entries = Float64Array.from(entries, function (v) { return v & mask; });
  }
  // the entry of a LUT for value v (rounded half up, as the server rounds)
  function lutValue(lut, v) {
    var i = Math.floor(v + 0.5) - lut.first, last = lut.entries.length - 1;
    return lut.entries[i < 0 ? 0 : i > last ? last : i];
  }

  // single-bit pixels, 8 to a byte, the first in the least significant bit (PS3.5 8.1.1)
  function unpackBits(packed, n) {
    var out = new Uint8Array(n);
    for (var i = 0; i < n; i++) out[i] = (packed[i >> 3] >> (i & 7)) & 1;
    return out;
  }

  // Colour: palette, YBR (native or compressed), planes, 16-bit samples. The server renders
  // the frame (pydicom converts each to RGB) as a lossless PNG, without its overlay planes,
  // which the viewer draws in a layer of its own; the frames resource sends native colour as
  // stored, as the metadata describes it, for clients that convert it themselves.
  function isColour(img) {
    return img.samples > 1 || (img.photometric || "").indexOf("PALETTE") === 0;
  }
  async function colourPixels(img, path) {
    var res = await get(path + "/rendered?overlays=false", "image/png");
    var bitmap = await createImageBitmap(await res.blob(),
      { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    try {
      if (bitmap.width !== img.cols || bitmap.height !== img.rows) {
        throw new Error("The server rendered " + bitmap.width + " x " + bitmap.height +
          " pixels for an image of " + img.cols + " x " + img.rows + ".");
      }
      var canvas = document.createElement("canvas");
      canvas.width = img.cols; canvas.height = img.rows;
      var ctx = canvas.getContext("2d");
      ctx.drawImage(bitmap, 0, 0);
      return ctx.getImageData(0, 0, img.cols, img.rows).data;
    } finally { bitmap.close(); }
  }

  // the window shown where the reader chose none and the image has no VOI LUT, and the one a
  // reader's change of window starts from: the header's first, else the VOI LUT's input
  // range, else the values' min-max
  // (with the function it is applied with: "" for the image's own)
  function defaultWindow(img) {
    if (img.windows.length) return [img.windows[0][1], img.windows[0][2], ""];
    if (img.voiLut && !img.voiLut.broken) return [img.voiLut.first + img.voiLut.count / 2, Math.max(1, img.voiLut.count), ""];
    return minMaxWindow(img);
  }
  // from the lowest value to the highest, as pixels.min_max_window: by the image's own
  // function where they are whole numbers, else LINEAR_EXACT, whose centre and width are the
  // values' own (a float map of values between 0 and 0.003: width 0.003, not LINEAR's 1.003)
  function minMaxWindow(img) {
    if (img.whole) return [(img.min + img.max) / 2 + 0.5, Math.max(1, img.max - img.min + 1), ""];
    return [(img.min + img.max) / 2, (img.max - img.min) || 1, "LINEAR_EXACT"];
  }
  // the function the window is applied with: the one it names, else the image's own
  function windowFunction(img) { return V.wfn || img.voiFunction; }
  // the narrowest window width the function allows (PS3.3 C.11.2.1.2-3)
  function narrowest(img) { return windowFunction(img) === "LINEAR" ? 1 : 1e-9; }
  // a window's numbers as the overlay says them: whole above 10, else 3 significant digits
  function windowNumber(x) { return Math.abs(x) >= 10 ? String(Math.round(x)) : String(Number(x.toPrecision(3))); }

  // The instance's file as it was stored, through WADO-RS (the token goes in a header, which
  // a plain link cannot send); transfer-syntax=* asks for it as stored, not converted.
  async function downloadOriginal(img) {
    var res = await get(instancePath(img), 'multipart/related; type="application/dicom"; transfer-syntax=*');
    var bytes = firstPart(await res.arrayBuffer(), res.headers.get("content-type"));
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([bytes], { type: "application/dicom" }));
    link.download = img.sop + ".dcm";
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 60000);
  }

  // the "Download the original file" button, in parent, placed by css
  function downloadButton(parent, img, css) {
    var button = el(parent, "button", "Download the original file", css + ";padding:4px 10px;cursor:pointer;" +
      "background:#26324d;color:#cfe0ff;border:1px solid #4a5f8f;border-radius:4px;font:inherit");
    button.id = "vw-download";
    button.addEventListener("click", function () {
      downloadOriginal(img).catch(function (e) { message("The file could not be downloaded: " + e.message); });
    });
  }

  // --- structured reports ---------------------------------------------------------------
  async function loadReport(img) {
    if (img.report) return img;
    img.report = await (await get(instancePath(img) + "/structured-report", "application/json")).json();
    return img;
  }

  // The document lives in a panel of this script's own inside the stage, over the canvas.
  function docPanel() {
    var panel = V.stage.querySelector(".vw-doc");
    if (!panel) {
      panel = document.createElement("div");
      panel.className = "vw-doc"; panel.id = "vw-document";
      panel.style.cssText = "position:absolute;inset:0;z-index:2;display:none;overflow:auto;" +
        "background:#111318;color:#e6e6e6;font:13px/1.5 system-ui,sans-serif;padding:16px 24px 32px;" +
        "user-select:text;cursor:auto;box-sizing:border-box";
      V.stage.appendChild(panel);
    }
    return panel;
  }
  function hideReport() {
    var panel = V.stage.querySelector(".vw-doc");
    if (panel) { panel.style.display = "none"; panel.removeAttribute("data-sop"); panel.textContent = ""; }
  }
  function el(parent, tag, text, css) {
    var node = document.createElement(tag);
    if (text) node.textContent = text;  // text, never markup: a report's text is the sender's
    if (css) node.style.cssText = css;
    parent.appendChild(node);
    return node;
  }

  // what a document could not read, said in amber (nothing where it read everything)
  function problemsBox(panel, id, problems) {
    if (!problems.length) return;
    var box = el(panel, "div", "", "margin-top:8px;padding:6px 10px;border:1px solid #f5a524;border-radius:6px;color:#f5a524");
    box.id = id;
    problems.forEach(function (p) { el(box, "div", p); });
  }

  function showReport(img) {
    var panel = docPanel();
    panel.style.display = "block";
    var key = img.sop + (img.report ? ":loaded" : ":loading");
    if (panel.getAttribute("data-sop") === key) return;
    panel.setAttribute("data-sop", key);
    panel.textContent = "";
    var r = img.report;
    if (!r) { el(panel, "div", "Loading the report…", "color:#999;margin-top:30%;text-align:center"); return; }
    el(panel, "div", r.title || r.document, "font-size:18px;font-weight:600;margin-bottom:2px").id = "vw-sr-title";
    el(panel, "div", r.document + (r.content_datetime ? " · " + r.content_datetime : ""), "color:#9a9a9a;font-size:12px");
    var flags = [];
    if (r.completion) flags.push("Completion: " + r.completion + (r.completion_description ? " (" + r.completion_description + ")" : ""));
    if (r.verification) flags.push("Verification: " + r.verification);
    if (r.preliminary) flags.push(r.preliminary === "PRELIMINARY" ? "Preliminary" : "Final");
    var incomplete = r.completion === "PARTIAL" || r.verification === "UNVERIFIED" || r.preliminary === "PRELIMINARY";
    if (flags.length) el(panel, "div", flags.join(" · "), "margin-top:6px;color:" + (incomplete ? "#f5a524" : "#7ee2a8")).id = "vw-sr-flags";
    r.verifying_observers.forEach(function (o) { el(panel, "div", "Verified by " + o, "color:#b5b5b5;font-size:12px"); });
    problemsBox(panel, "vw-sr-problems", r.problems);
    var list = el(panel, "div", "", "margin-top:12px");
    list.id = "vw-sr-items";
    r.items.forEach(function (item) {
      // the root is the document's title, said above
      if (item.position === "1" && item.concept === (r.title || r.document)) return;
      var row = el(list, "div", "", "padding:2px 0 2px " + (Math.max(0, item.depth - 1) * 18) + "px");
      row.id = "vw-sr-" + item.position;
      row.className = "vw-sr-item";
      row.setAttribute("data-position", item.position);
      row.setAttribute("data-type", item.value_type);
      if (item.relationship) el(row, "span", item.relationship + " ", "color:#7d8590;font-size:11px");
      if (item.value_type === "CONTAINER") {
        el(row, "span", item.concept || "(untitled section)", "font-weight:600;" + (item.depth <= 1 ? "font-size:14px" : ""));
        return;
      }
      if (item.concept) el(row, "span", item.concept + ": ", "font-weight:600");
      if (item.refers_to) {
        var link = el(row, "a", item.value, "color:#7aa2f7;cursor:pointer");
        link.className = "vw-sr-ref";
        link.addEventListener("click", function () {
          var target = document.getElementById("vw-sr-" + item.refers_to) || document.getElementById("vw-sr-title");
          if (!target) return;
          target.scrollIntoView({ block: "center" });
          target.style.background = "#2d3a5a";
          setTimeout(function () { target.style.background = ""; }, 1500);
        });
        return;
      }
      el(row, "span", item.value, "white-space:pre-wrap").className = "vw-sr-value";
      if (item.code) el(row, "span", " (" + item.code + ")", "color:#7d8590;font-size:11px");
      if (item.observed) el(row, "span", " · observed " + item.observed, "color:#7d8590;font-size:11px");
      if (item.where) el(row, "span", " · " + item.where, "color:#cfd6e4").className = "vw-sr-where";
      var series = item.series_uid && V.study.series.filter(function (s) { return s.uid === item.series_uid; })[0];
      if (series) {
        // as its presentation state shows it (turned, windowed), where it has one here
        var show = el(row, "button", item.shown_as ? "Show as seen" : "Show image", "margin-left:8px;font-size:11px;padding:1px 8px;cursor:pointer;" +
          "background:#26324d;color:#cfe0ff;border:1px solid #4a5f8f;border-radius:4px");
        show.className = "vw-sr-show";
        show.addEventListener("click", function () {
          showImage(series, item.sop_instance_uid, Math.max(0, (item.frames[0] || 1) - 1), item.shown_as);
        });
      }
    });
  }

  // --- waveforms (ECG, hemodynamic, respiratory...) ----------------------------------------
  async function loadWaveform(img) {
    if (img.waveform) return img;
    img.waveform = await (await get(instancePath(img) + "/waveform", "application/json")).json();
    img.waveGroup = 0;
    return img;
  }
  // millivolts per unit of a channel's UCUM units, where they are a voltage
  var MV_PER_UNIT = { uV: 0.001, mV: 1, V: 1000 };

  // Shown in the document panel: what it is, its groups (an ECG's rhythm strip and median
  // beat), the device's statements, and the channels drawn on a grid at 25 mm/s and, for
  // voltages, 10 mm/mV, the scale of ECG paper (a millimetre is as many pixels as fit the
  // recording's width, between 2 and 6).
  function showWaveform(img) {
    var panel = docPanel();
    panel.style.display = "block";
    var key = img.sop + (img.waveform ? ":wave" + img.waveGroup + ":" + panel.clientWidth : ":loading");
    if (panel.getAttribute("data-sop") === key) return;
    panel.setAttribute("data-sop", key);
    panel.textContent = "";
    var w = img.waveform;
    if (!w) { el(panel, "div", "Loading the waveform…", "color:#999;margin-top:30%;text-align:center"); return; }
    el(panel, "div", w.document, "font-size:18px;font-weight:600;margin-bottom:2px").id = "vw-wave-title";
    var when = /^(\d{4})(\d\d)(\d\d)(\d\d)?(\d\d)?(\d\d)?/.exec(w.acquired || "");
    if (when) el(panel, "div", "Acquired " + when[1] + "-" + when[2] + "-" + when[3] + (when[4] ? " " + when[4] + ":" + (when[5] || "00") + (when[6] ? ":" + when[6] : "") : ""), "color:#9a9a9a;font-size:12px");
    if (w.groups.length > 1) {
      var tabs = el(panel, "div", "", "margin-top:8px");
      w.groups.forEach(function (g, i) {
        var b = el(tabs, "button", g.label, "margin-right:6px;font-size:12px;padding:2px 10px;cursor:pointer;border-radius:4px;" +
          "border:1px solid #4a5f8f;color:#cfe0ff;background:" + (i === img.waveGroup ? "#3a4d7a" : "#1b2233"));
        b.className = "vw-wave-group"; b.setAttribute("aria-pressed", i === img.waveGroup ? "true" : "false");
        b.addEventListener("click", function () { img.waveGroup = i; showWaveform(img); });
      });
    }
    if (w.annotations.length) el(panel, "div", w.annotations.join(" · "), "margin-top:8px;color:#d8d8d8").id = "vw-wave-notes";
    problemsBox(panel, "vw-wave-problems", w.problems);
    var g = w.groups[img.waveGroup], secs = g.samples / g.sampling_frequency;
    var voltage = g.channels.every(function (c) { return MV_PER_UNIT[c.units]; });
    el(panel, "div", g.label + " · " + g.channels.length + " channel(s) · " + +secs.toFixed(2) + " s at " + g.sampling_frequency +
      " Hz · 25 mm/s" + (voltage ? " · 10 mm/mV" : " · each channel scaled to its row"), "margin-top:8px;color:#9a9a9a;font-size:12px").id = "vw-wave-scale";
    var canvas = el(panel, "canvas", "", "display:block;margin-top:6px");
    canvas.id = "vw-wave-canvas";
    drawWaveform(canvas, g, voltage, panel.clientWidth - 48);
    downloadButton(panel, img, "margin-top:10px");
  }

  function drawWaveform(canvas, g, voltage, width) {
    var LEFT = 96, TOP = 4, secs = g.samples / g.sampling_frequency;
    var mm = Math.max(2, Math.min(6, (width - LEFT - 8) / (secs * 25)));
    var row = Math.round(20 * mm), plotW = secs * 25 * mm;
    var cssW = Math.ceil(LEFT + plotW + 8), cssH = TOP * 2 + row * g.channels.length, dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(cssW * dpr); canvas.height = Math.round(cssH * dpr);
    canvas.style.width = cssW + "px"; canvas.style.height = cssH + "px";
    // where the test (and anyone reading the figure) finds the scale, in CSS pixels
    canvas.setAttribute("data-mm", String(mm)); canvas.setAttribute("data-left", String(LEFT));
    canvas.setAttribute("data-top", String(TOP)); canvas.setAttribute("data-row", String(row));
    var ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#0c0d10"; ctx.fillRect(0, 0, cssW, cssH);
    // the grid: 1 mm and, stronger, 5 mm
    for (var k = 0; k * mm <= plotW + 0.01; k++) {
      ctx.strokeStyle = k % 5 ? "rgba(220,70,70,0.18)" : "rgba(220,70,70,0.45)"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(LEFT + k * mm, TOP); ctx.lineTo(LEFT + k * mm, cssH - TOP); ctx.stroke();
    }
    for (k = 0; k * mm <= cssH - 2 * TOP + 0.01; k++) {
      ctx.strokeStyle = k % 5 ? "rgba(220,70,70,0.18)" : "rgba(220,70,70,0.45)";
      ctx.beginPath(); ctx.moveTo(LEFT, TOP + k * mm); ctx.lineTo(LEFT + plotW, TOP + k * mm); ctx.stroke();
    }
    var dx = 25 * mm / g.sampling_frequency;
    g.channels.forEach(function (c, i) {
      var middle = TOP + (i + 0.5) * row, s = c.samples, n = s.length, scale, centre = 0, j;
      if (voltage) scale = 10 * mm * MV_PER_UNIT[c.units];  // pixels per unit
      else {
        var lo = Infinity, hi = -Infinity;
        for (j = 0; j < n; j++) { var v = s[j] * c.factor + c.baseline; if (v < lo) lo = v; if (v > hi) hi = v; }
        scale = hi > lo ? row * 0.8 / (hi - lo) : 1; centre = (hi + lo) / 2;
      }
      ctx.fillStyle = "#cfd6e6"; ctx.font = "12px system-ui,sans-serif"; ctx.textBaseline = "middle";
      ctx.fillText(c.label.length > 14 ? c.label.slice(0, 13) + "…" : c.label, 6, middle);
      if (!voltage && c.units) { ctx.fillStyle = "#8b93a5"; ctx.fillText(c.units, 6, middle + 14); }
      ctx.strokeStyle = "#f2f2f2"; ctx.lineWidth = 1.2; ctx.lineJoin = "round";
      ctx.beginPath();
      for (j = 0; j < n; j++) {
        var y = middle - ((s[j] * c.factor + c.baseline) - centre) * scale;
        if (j) ctx.lineTo(LEFT + j * dx, y); else ctx.moveTo(LEFT, y);
      }
      ctx.stroke();
    });
  }

  // --- drawing -----------------------------------------------------------------------------
  function renderImage(img) {
    // the current frame windowed into an offscreen canvas of the image's own size
    var off = V.offscreen;
    if (off.width !== img.cols || off.height !== img.rows) { off.width = img.cols; off.height = img.rows; }
    var octx = off.getContext("2d");
    var data = octx.createImageData(img.cols, img.rows);
    var out = data.data, n = img.rows * img.cols, i;
    if (img.rgba) {
      out.set(img.rgba);
    } else {
      var c = V.wc, w = V.ww, low = c - 0.5 - (w - 1) / 2, high = c - 0.5 + (w - 1) / 2;
      var flip = (img.photometric === "MONOCHROME1") !== V.invert;
      var fn = windowFunction(img), sigmoid = fn === "SIGMOID", exact = fn === "LINEAR_EXACT";
      // the VOI LUT's output range (0 to 2^bits - 1) to 0..255, as pixels.voi_display does
      var lut = usesLut(img) ? img.voiLut : null, top = lut ? Math.pow(2, lut.bits) - 1 : 1;
      for (i = 0; i < n; i++) {
        var v = img.values[i], y;
        if (lut) y = Math.floor(lutValue(lut, v) * 255 / top + 0.5);
        else if (sigmoid) y = Math.round(255 / (1 + Math.exp(-4 * (v - c) / w)));
        else if (exact) y = Math.round(((v - c) / w + 0.5) * 255);
        else if (v <= low) y = 0;
        else if (v > high) y = 255;
        else y = w > 1 ? Math.round(((v - (c - 0.5)) / (w - 1) + 0.5) * 255) : 255;
        if (y < 0) y = 0; else if (y > 255) y = 255;
        if (flip) y = 255 - y;
        out[i * 4] = out[i * 4 + 1] = out[i * 4 + 2] = y; out[i * 4 + 3] = 255;
      }
    }
    octx.putImageData(data, 0, 0);
    V.rendered = data;
  }

  // the image is shown through its VOI LUT: the reader chose no window (or chose the LUT)
  function usesLut(img) { return !!(V.lut && img.voiLut && img.voiLut.entries); }
  function lutName(img) { return "VOI LUT" + (img.voiLut.explanation ? " " + img.voiLut.explanation : ""); }

  // the stage's size in device pixels: the canvas's, and the frame pan and zoom are in
  function stageSize() {
    var dpr = window.devicePixelRatio || 1;
    return [Math.round(V.stage.clientWidth * dpr), Math.round(V.stage.clientHeight * dpr)];
  }

  function draw() {
    if (!V) return;
    var canvas = V.canvas, ctx = canvas.getContext("2d");
    var dpr = window.devicePixelRatio || 1, size = stageSize(), cw = size[0], ch = size[1];
    if (canvas.width !== cw || canvas.height !== ch) { canvas.width = cw; canvas.height = ch; }
    // the stage changed size (window, tag panel): what was at its centre stays there
    if (V.drawnW && (V.drawnW !== cw || V.drawnH !== ch)) { V.panX += (cw - V.drawnW) / 2; V.panY += (ch - V.drawnH) / 2; }
    V.drawnW = cw; V.drawnH = ch;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cw, ch);
    var img = V.images[V.index];
    // a waveform is drawn again to the panel's new width (nothing is done at the same width)
    var doc = V.stage.querySelector(".vw-doc");
    if (img && img.waveform && doc && (doc.getAttribute("data-sop") || "").indexOf(img.sop + ":wave") === 0) showWaveform(img);
    if (!img || (!img.values && !img.rgba)) { overlay(); return; }
    if (V.needsRender) { renderImage(img); V.needsRender = false; }
    ctx.imageSmoothingEnabled = V.zoom < 1;
    var t = view();
    ctx.setTransform(t[0], t[1], t[2], t[3], t[4], t[5]);
    ctx.drawImage(V.offscreen, 0, 0);
    if (V.showOverlays && img.overlays && img.overlays.canvas) ctx.drawImage(img.overlays.canvas, 0, 0);
    // measurements of this image
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    imageMeasures().concat(V.drawing ? [V.drawing] : []).forEach(function (m) {
      drawMeasure(ctx, img, m, dpr);
    });
    if (V.seenMarks && V.seenMarks.key === imageKey(img)) {
      // (the reader's own measurements, which a key image's state copies, are drawn once;
      // the state keeps coordinates as 32-bit floats)
      var own = {}, at = function (kind, p) { return kind + ":" + p.map(function (v) { return v.toFixed(2); }).join(","); };
      imageMeasures().forEach(function (m) {
        own[at(m.kind, m.p)] = own[at("text", measureEnd(m.kind, m.p))] = true;
      });
      V.seenMarks.marks.forEach(function (m) { if (!own[at(m.kind, m.p || [])]) drawSeenMark(ctx, m, dpr); });
    }
    overlay();
  }

  // A measurement is {kind, p}: p holds image coordinates (x, y pairs, pixel i spanning
  // [i, i + 1)). A length is two points; an ROI the corners of its ellipse's bounding box; an
  // angle three points, the vertex second (while the second arm is placed, two and a preview).
  function drawMeasure(ctx, img, m, dpr) {
    var p = m.p, label, at;
    var points = m.kind !== "roi" && m.preview ? p.concat(m.preview) : p;
    ctx.strokeStyle = "#ffd43b"; ctx.lineWidth = 1.5 * dpr;
    tracePath(ctx, m.kind, points);
    ctx.stroke();
    at = measureEnd(m.kind, points); at = toScreen(at[0], at[1]);
    label = measureText(img, m);
    if (!label) return;
    ctx.fillStyle = "#ffd43b"; ctx.font = (12 * dpr) + "px monospace";
    label.split("\n").forEach(function (line, i) { ctx.fillText(line, at[0] + 6 * dpr, at[1] - 6 * dpr + i * 15 * dpr); });
  }

  // What a presentation state draws on the image it shows (see showImage): its lines, its
  // ellipses (an ROI's bounding box) and its words, in image coordinates as measurements
  // are; in their own colour, for they are not the reader's to change.
  function drawSeenMark(ctx, m, dpr) {
    var p = m.p || [];
    ctx.strokeStyle = ctx.fillStyle = "#63e6be"; ctx.lineWidth = 1.5 * dpr;
    ctx.font = (12 * dpr) + "px monospace";
    if (m.kind === "text") {
      var a = toScreen(p[0], p[1]);
      ctx.fillText(m.label || "", a[0] + 6 * dpr, a[1] - 6 * dpr);
      return;
    }
    tracePath(ctx, m.kind, p);
    ctx.stroke();
  }

  // Where a measurement's words go (image coordinates): past an ROI's lower right, at a
  // line's last point (as gsps.Mark.ends puts a state's words).
  function measureEnd(kind, p) {
    return kind === "roi" ? [Math.max(p[0], p[2]), Math.max(p[1], p[3])] : p.slice(-2);
  }

  // The path of a shape drawn on the image, on the screen: an ROI's ellipse (its bounding
  // box's corners p; a quarter turn swaps its axes), else the polyline through p.
  function tracePath(ctx, kind, p) {
    ctx.beginPath();
    if (kind === "roi") {
      var c = toScreen((p[0] + p[2]) / 2, (p[1] + p[3]) / 2);
      var rx = Math.abs(p[2] - p[0]) / 2 * V.zoom, ry = Math.abs(p[3] - p[1]) / 2 * V.zoom;
      ctx.ellipse(c[0], c[1], V.rot % 2 ? ry : rx, V.rot % 2 ? rx : ry, 0, 0, 2 * Math.PI);
      return;
    }
    for (var k = 0; k + 1 < p.length; k += 2) {
      var s = toScreen(p[k], p[k + 1]);
      if (k) ctx.lineTo(s[0], s[1]); else ctx.moveTo(s[0], s[1]);
    }
  }

  // A measurement as one line of a report: what, and where ("series 1, image 13").
  function measureLine(img, m) {
    var what = measureText(img, m).split("\n").join(", ");
    var kind = m.kind === "roi" ? "ROI " : m.kind === "angle" ? "Angle " : "Length ";
    var series = m.series && m.series.number != null ? "series " + m.series.number + ", " : "";
    var at = series + "image " + num(img.meta, "00200013", 0, m.index + 1) + (img.frame ? ", frame " + (img.frame + 1) : "");
    return kind + what + " (" + at + ")";
  }

  // The viewer beside the report editor: its measurements not yet sent go to the report page,
  // which adds them to the findings (it checks what it is given).
  function inReportPage() {
    try { return !!(window.frameElement && window.frameElement.id === "report-viewer"); } catch (e) { return false; }
  }
  // ... and its findings can be edited now (the page says so on the frame)
  function reportTakesMeasures() {
    return inReportPage() && window.frameElement.getAttribute("data-can-report") === "1";
  }
  function sendToReport() {
    if (!reportTakesMeasures()) { message("The report's findings cannot be edited now."); return; }
    var lines = [], sent = [];
    // every series' (in the order their images were first measured)
    Object.keys(V.measures).forEach(function (key) {
      V.measures[key].forEach(function (m) {
        if (m.sent || !m.line) return;
        lines.push(m.line); sent.push(m);
      });
    });
    if (!lines.length) { message("No new measurement to send: draw one first."); return; }
    window.parent.postMessage({ type: "pacs-measurements", study: V.study.study_id, lines: lines, at: Date.now() },
      window.location.origin);
    sent.forEach(function (m) { m.sent = true; });
    saveMeasures();
    message("");
  }

  function measureText(img, m) {
    if (m.kind === "roi") return roiText(img, m);
    if (m.kind === "angle") return m.p.length === 6 || m.preview ? angleText(img, m.preview ? m.p.concat(m.preview) : m.p) : "";
    return lengthText(img, m.p);
  }

  // the tools that draw a measurement, and what they draw
  var DRAWN = { measure: "length", roi: "roi", angle: "angle" };

  // The current image's measurements. They are kept per image (its SOP instance and frame),
  // for every series opened, until the page is left: going to another series and back, they
  // are there.
  function imageKey(img) { return img.sop + ":" + img.frame; }
  function imageMeasures(create) {
    var img = V.images[V.index];
    if (!img) return [];
    var key = imageKey(img);
    if (create && !V.measures[key]) V.measures[key] = [];
    return V.measures[key] || [];
  }

  // A finished measurement joins its image's; an ROI's values are summed once, here, and its
  // line for the report written (where it was drawn is known now).
  function keep(m) {
    var img = V.images[V.index];
    if (!img) return;
    if (m.kind === "roi") m.stats = roiStats(img, m.p);
    m.id = newMeasureId();
    m.series = V.series; m.index = V.index;
    m.line = measureLine(img, m);
    imageMeasures(true).push(m);
    saveMeasures();
  }

  // The study's measurements, kept on the server for this user (another tab, browser or day
  // finds them) and in the tab's sessionStorage (a reload finds them even when the last
  // save had not reached the server). Another study shown for comparison: the tab only.
  //
  // The same user may have the study open in two windows at once (the report page's viewer
  // on one screen, a full viewer on the other). Each keeps `base`, the measurements as the
  // server last had them, and their `revision`; a save names that revision, and the server
  // refuses it (409, with what it keeps) when the other window saved since. This window then
  // merges what it changed since `base` (drawn, deleted, sent to the report; each
  // measurement has an id) into what the server keeps, and saves that: neither window's
  // measurements are lost. Coming back to the window fetches the other's the same way.
  function measuresKey(study) { return "pacs_measures_" + study.study_id; }
  function newMeasureId() {
    var bytes = new Uint8Array(8);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  // what is kept of them (the page also keeps each one's series and place, to write its line)
  function plainMeasures(images) {
    var kept = {};
    Object.keys(images || {}).forEach(function (key) {
      if (images[key] && images[key].length) kept[key] = images[key].map(function (m) {
        return { id: m.id, kind: m.kind, p: m.p, stats: m.stats, line: m.line, sent: !!m.sent };
      });
    });
    return kept;
  }
  function measuresById(images) {
    var out = {};
    Object.keys(images || {}).forEach(function (key) {
      (images[key] || []).forEach(function (m) { if (m && m.id) out[m.id] = { key: key, m: m }; });
    });
    return out;
  }
  // What this window changed since `base` (drawn here, deleted here, sent to the report from
  // here), applied to `remote`, what the server keeps now.
  function mergeMeasures(base, local, remote) {
    var was = measuresById(base), mine = measuresById(local), theirs = measuresById(remote), merged = {};
    function add(key, m) { (merged[key] = merged[key] || []).push(m); }
    Object.keys(remote || {}).forEach(function (key) {
      (remote[key] || []).forEach(function (m) {
        var here = mine[m.id];
        if (was[m.id] && !here) return;  // deleted here
        var copy = Object.assign({}, m);
        if (here && here.m.sent) copy.sent = true;
        add(key, copy);
      });
    });
    Object.keys(mine).forEach(function (id) {
      if (!was[id] && !theirs[id]) add(mine[id].key, mine[id].m);  // drawn here
    });
    return merged;
  }
  function rememberMeasures(v) {
    var kept = { reader: v.study.reader, images: plainMeasures(v.measures), base: v.measuresBase, revision: v.measuresRevision };
    try { sessionStorage.setItem(measuresKey(v.study), JSON.stringify(kept)); } catch (e) { /* full: kept in the page only */ }
  }
  function saveMeasures() {
    rememberMeasures(V);
    if (!V.study.comparing) keepOnServer(V);
  }
  // What the server keeps now, with this window's changes merged in; the reader is told
  // what that added here or took away (measurements must not come and go unexplained).
  function adoptMeasures(v, kept) {
    var before = measuresById(v.measures);
    v.measures = mergeMeasures(v.measuresBase, v.measures, kept.images || {});
    v.measuresBase = kept.images || {};
    v.measuresRevision = kept.revision || 0;
    rememberMeasures(v);
    if (v !== V) return;
    notice(mergeNotice(before, measuresById(v.measures)));
    if (V.images.length) draw();
  }
  function mergeNotice(before, after) {
    var added = Object.keys(after).filter(function (id) { return !before[id]; }).length;
    var removed = Object.keys(before).filter(function (id) { return !after[id]; }).length;
    var said = [];
    if (added) said.push(added + " added");
    if (removed) said.push(removed + " deleted");
    return said.length ? "Measurements saved from another window of yours: " + said.join(", ") + " here." : "";
  }
  function unsavedMeasures(v) {
    return JSON.stringify(plainMeasures(v.measures)) !== JSON.stringify(plainMeasures(v.measuresBase));
  }
  function measuresUrl(v) { return api("/studies/" + encodeURIComponent(v.study.study_id) + "/drawn-measurements"); }
  function measuresHeaders() {
    return { Authorization: "Bearer " + token(), "Content-Type": "application/json", Accept: "application/json" };
  }
  async function refused(res) {
    var detail = await detailOf(res);
    message("Your measurements could not be kept on the server: " + (typeof detail === "string" && detail ? detail : "it answered " + res.status));
  }
  // One save (or fetch) at a time, in the order asked, so that an older one never lands last;
  // a save waiting its turn sends the measurements as they are when it goes.
  var saving = Promise.resolve();
  function keepOnServer(v) {
    if (v.saveWaiting) return;
    v.saveWaiting = true;
    saving = saving.then(function () { v.saveWaiting = false; return putMeasures(v); });
  }
  async function putMeasures(v) {
    try {
      for (var tries = 0; tries < 5; tries++) {
        var body = JSON.stringify({ images: plainMeasures(v.measures), revision: v.measuresRevision });
        var res = await fetch(measuresUrl(v), { method: "PUT", keepalive: body.length < 60000, headers: measuresHeaders(), body: body });
        if (res.status === 409) {  // another window saved since: merge into theirs, and again
          var kept = null;
          try { kept = await res.json(); } catch (e) { kept = null; }
          if (!kept || typeof kept.revision !== "number") { await refused(res); return; }
          adoptMeasures(v, kept);
          continue;
        }
        if (!res.ok) { await refused(res); return; }
        var saved = await res.json();
        v.measuresBase = saved.images; v.measuresRevision = saved.revision;
        rememberMeasures(v);
        return;
      }
      message("Your measurements could not be kept on the server: another window keeps saving them; try again.");
    } catch (e) { message("Your measurements could not be kept on the server: it could not be reached."); }
  }
  // Back in this window: the other window's measurements, fetched and merged (and this
  // window's unsaved ones saved).
  var lastFetched = 0;
  function fetchMeasures() {
    var v = V;
    if (!v || !v.study || v.study.comparing || Date.now() - lastFetched < 1000) return;
    lastFetched = Date.now();
    saving = saving.then(async function () {
      try {
        var res = await fetch(measuresUrl(v), { headers: measuresHeaders() });
        if (!res.ok) return;
        var kept = await res.json();
        if (kept.revision !== v.measuresRevision) adoptMeasures(v, kept);
        if (unsavedMeasures(v)) keepOnServer(v);
      } catch (e) { /* unreachable now: the next save tells */ }
    });
  }
  window.addEventListener("focus", fetchMeasures);
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") fetchMeasures(); });
  // The study's measurements as the server gave them with the page, with what this tab had
  // not saved yet (its sessionStorage, from before a reload) merged in.
  function loadMeasures(v) {
    var study = v.study, server = study.measurements;
    server = server && typeof server === "object" && !Array.isArray(server) ? server : {};
    var tab = null;
    try { tab = JSON.parse(sessionStorage.getItem(measuresKey(study)) || "null"); } catch (e) { tab = null; }
    // the tab's, of this user (another who signed out in this tab keeps theirs)
    var ok = tab && typeof tab === "object" && tab.reader === study.reader && tab.images && tab.base &&
      typeof tab.revision === "number";
    if (study.comparing) {  // the tab's only
      v.measures = ok ? tab.images : {}; v.measuresBase = {}; v.measuresRevision = 0;
      return;
    }
    v.measures = ok ? mergeMeasures(tab.base, tab.images, server) : mergeMeasures({}, {}, server);
    v.measuresBase = server;
    v.measuresRevision = study.measurements_revision || 0;
    if (unsavedMeasures(v)) saveMeasures();
  }

  // The image as turned by the reader: mirrored left to right (V.flip), then turned V.rot
  // quarter turns clockwise. As a canvas matrix [a, b, c, d, e, f] (x' = a x + c y + e,
  // y' = b x + d y + f) from image pixels to the turned image's, whose width is the image's
  // height after an odd number of quarter turns.
  function turned(img) {
    var w = img.cols || 0, h = img.rows || 0;
    var m = V.flip ? [-1, 0, 0, 1, w, 0] : [1, 0, 0, 1, 0, 0];
    var turns = [[1, 0, 0, 1, 0, 0], [0, 1, -1, 0, h, 0], [-1, 0, 0, -1, w, h], [0, -1, 1, 0, 0, w]][V.rot || 0];
    return [turns[0] * m[0] + turns[2] * m[1], turns[1] * m[0] + turns[3] * m[1],
      turns[0] * m[2] + turns[2] * m[3], turns[1] * m[2] + turns[3] * m[3],
      turns[0] * m[4] + turns[2] * m[5] + turns[4], turns[1] * m[4] + turns[3] * m[5] + turns[5]];
  }
  function turnedSize(img) { return V.rot % 2 ? [img.rows, img.cols] : [img.cols, img.rows]; }
  // image pixels to the canvas's: turned, zoomed, panned
  function view() {
    var m = turned(V.images[V.index] || {}), z = V.zoom;
    return [z * m[0], z * m[1], z * m[2], z * m[3], z * m[4] + Math.round(V.panX), z * m[5] + Math.round(V.panY)];
  }
  function toScreen(x, y) { var t = view(); return [t[0] * x + t[2] * y + t[4], t[1] * x + t[3] * y + t[5]]; }
  function toImage(clientX, clientY) {
    var r = V.canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    var t = view(), det = t[0] * t[3] - t[1] * t[2];
    var u = (clientX - r.left) * dpr - t[4], w = (clientY - r.top) * dpr - t[5];
    return [(t[3] * u - t[2] * w) / det, (t[0] * w - t[1] * u) / det];
  }
  // pan so that image point p is at canvas pixel (x, y)
  function pinAt(p, x, y) {
    var m = turned(V.images[V.index] || {});
    V.panX = x - V.zoom * (m[0] * p[0] + m[2] * p[1] + m[4]);
    V.panY = y - V.zoom * (m[1] * p[0] + m[3] * p[1] + m[5]);
  }
  // the reader's turn: a quarter clockwise, or a mirror left to right, about the image's
  // point at the stage's centre
  function turn(quarter, mirror) {
    var img = V.images[V.index];
    if (!img || !img.rows || !img.cols) return;
    var size = stageSize(), r = V.canvas.getBoundingClientRect(), dpr = window.devicePixelRatio || 1;
    var centre = toImage(r.left + size[0] / 2 / dpr, r.top + size[1] / 2 / dpr);
    if (mirror) { V.flip = !V.flip; V.rot = (4 - (V.rot || 0)) % 4; }  // mirrored as seen now
    V.rot = ((V.rot || 0) + quarter) % 4;
    pinAt(centre, size[0] / 2, size[1] / 2);
    draw(); save();
  }
  // the patient's directions at the edges as the image is shown (turned), as
  // orientation.Turn.edges turns a key image's for its print
  function shownEdges(sides) {
    var e = { top: sides.top, right: sides.right, bottom: sides.bottom, left: sides.left };
    if (V.flip) e = { top: e.top, right: e.left, bottom: e.bottom, left: e.right };
    for (var k = 0; k < (V.rot || 0); k++) e = { top: e.left, right: e.top, bottom: e.right, left: e.bottom };
    return e;
  }
  function lengthText(img, m) {
    var dx = m[2] - m[0], dy = m[3] - m[1];
    if (!img.spacing) return Math.sqrt(dx * dx + dy * dy).toFixed(1) + " px (no PixelSpacing)";
    var mm = Math.sqrt(Math.pow(dx * img.spacing[1], 2) + Math.pow(dy * img.spacing[0], 2));
    return mm.toFixed(1) + " mm";
  }

  // The angle at the vertex (p[2], p[3]), in the patient's plane: pixels scaled by their
  // spacing, so a non-square pixel does not bend it.
  function angleText(img, p) {
    var sx = img.spacing ? img.spacing[1] : 1, sy = img.spacing ? img.spacing[0] : 1;
    var ux = (p[0] - p[2]) * sx, uy = (p[1] - p[3]) * sy, vx = (p[4] - p[2]) * sx, vy = (p[5] - p[3]) * sy;
    var lengths = Math.sqrt(ux * ux + uy * uy) * Math.sqrt(vx * vx + vy * vy);
    if (!lengths) return "";
    var cos = Math.max(-1, Math.min(1, (ux * vx + uy * vy) / lengths));
    return (Math.acos(cos) * 180 / Math.PI).toFixed(1) + "°";
  }

  // The modality values inside an elliptical ROI: the pixels whose centres lie in it.
  function roiStats(img, p) {
    var cx = (p[0] + p[2]) / 2, cy = (p[1] + p[3]) / 2, rx = Math.abs(p[2] - p[0]) / 2, ry = Math.abs(p[3] - p[1]) / 2;
    var st = { n: 0, sum: 0, sq: 0, min: Infinity, max: -Infinity };
    if (!img.values || rx <= 0 || ry <= 0) return st;
    var y0 = Math.max(0, Math.floor(cy - ry)), y1 = Math.min(img.rows - 1, Math.ceil(cy + ry));
    var x0 = Math.max(0, Math.floor(cx - rx)), x1 = Math.min(img.cols - 1, Math.ceil(cx + rx));
    for (var y = y0; y <= y1; y++) {
      var dy = (y + 0.5 - cy) / ry, row = y * img.cols;
      for (var x = x0; x <= x1; x++) {
        var dx = (x + 0.5 - cx) / rx;
        if (dx * dx + dy * dy > 1) continue;
        var v = img.values[row + x];
        st.n++; st.sum += v; st.sq += v * v;
        if (v < st.min) st.min = v;
        if (v > st.max) st.max = v;
      }
    }
    return st;
  }

  function roiText(img, m) {
    var p = m.p, rx = Math.abs(p[2] - p[0]) / 2, ry = Math.abs(p[3] - p[1]) / 2;
    var area = img.spacing ? (Math.PI * rx * img.spacing[1] * ry * img.spacing[0]).toFixed(1) + " mm²"
      : (Math.PI * rx * ry).toFixed(1) + " px² (no PixelSpacing)";
    if (img.rgba) return "area " + area + "\nno values: a colour image";
    var st = m.stats || roiStats(img, p);
    if (!st.n) return "area " + area + "\nno pixel inside";
    var mean = st.sum / st.n, sd = Math.sqrt(Math.max(0, st.sq / st.n - mean * mean)), unit = img.unit ? " " + img.unit : "";
    return "mean " + mean.toFixed(1) + unit + ", SD " + sd.toFixed(1) + "\nmin " + round(st.min) + ", max " + round(st.max) +
      "\narea " + area + " (" + st.n + " px)";
  }
  function round(v) { return Number.isInteger(v) ? String(v) : v.toFixed(2); }

  function overlay() {
    var img = V.images[V.index], s = V.study, series = V.series || {};
    $("vw-overlay-tl").innerText = [s.patient, s.patient_id, s.age_sex, s.study_date].filter(Boolean).join("\n");
    $("vw-overlay-tr").innerText = [s.description, "Se " + (series.number == null ? "" : series.number) + " " + (series.description || ""), series.modality || s.modality,
      img && !img.notImage ? img.projection : ""].filter(Boolean).join("\n");
    var position = V.provisional ? "…/" + (series.count || "…") : (V.index + 1) + "/" + V.images.length;
    $("vw-overlay-bl").innerText = img ? ("Im " + position +
      "  (Inst " + num(img.meta, "00200013", 0, "?") + (img.frame ? ", frame " + (img.frame + 1) : "") + ")\n" +
      (img.slice && !img.notImage ? img.slice + "\n" : "") +
      (img.isReport ? "structured report" : img.isWaveform ? "waveform" : img.notImage ? "not an image" : (img.rgba ? "colour" : usesLut(img) ? lutName(img) : "WL " + windowNumber(V.wc) + " / WW " + windowNumber(V.ww) + (windowFunction(img) === "LINEAR" ? "" : " " + windowFunction(img).toLowerCase().replace("_", " "))) +
      (V.invert ? "  inverted" : "") + overlayText(img)) + (isKey(img) ? "\nKey image" : "")) : "";
    var sides = img && !img.notImage && !img.isReport && !img.error && img.orientation;
    ["top", "right", "bottom", "left"].forEach(function (side) {
      var marker = $("vw-orient-" + side);
      if (marker) marker.innerText = sides ? shownEdges(sides)[side] : "";
    });
    var lastMeasure = imageMeasures().slice(-1)[0];
    $("vw-overlay-br").innerText = "Zoom " + Math.round(V.zoom * 100) + "%" +
      (V.rot ? "  turned " + V.rot * 90 + "°" : "") + (V.flip ? "  mirrored" : "") +
      (lastMeasure && img ? "\n" + measureText(img, lastMeasure) : "") + (V.cine ? "\ncine " + V.fps + " fps" : "");
    V.stage.setAttribute("data-index", String(V.index));
    V.stage.setAttribute("data-key", isKey(img) ? "1" : "0");
    var toReport = $("vw-to-report");
    if (toReport) toReport.style.display = reportTakesMeasures() ? "inline-flex" : "none";
    var keyButton = $("vw-key");
    if (keyButton) keyButton.style.background = isKey(img) ? "var(--amber-5)" : "var(--gray-2)";
    V.stage.setAttribute("data-window", Math.round(V.wc) + "," + Math.round(V.ww));
    V.stage.setAttribute("data-zoom", V.zoom.toFixed(4));
    V.stage.setAttribute("data-overlays", img && img.overlays && img.overlays.count ? (V.showOverlays ? "shown" : "hidden") : "none");
    var shown = !!(img && (img.values || img.rgba));
    // data-shown: an image is on the canvas; data-ready: and the series is loaded around it
    if (shown && !V.firstShownAt) {
      // the time of the first frame that paints it (the canvas is drawn; the frame shows it)
      V.firstShownAt = -1;
      var v = V;
      requestAnimationFrame(function () { v.firstShownAt = performance.now(); });
    }
    V.stage.setAttribute("data-shown", shown ? "1" : "0");
    V.stage.setAttribute("data-kind", !img ? "" : img.isReport ? (img.report ? "report" : "report-loading") :
      img.isWaveform ? (img.waveform ? "waveform" : "waveform-loading") : img.notImage ? "other" : "image");
    V.stage.setAttribute("data-ready", shown && !V.provisional ? "1" : "0");
    if (lastMeasure && img) V.stage.setAttribute("data-measure", measureText(img, lastMeasure));
    if (tagsOpen()) showTags();
  }

  function overlayText(img) {
    if (!img.hasOverlays) return "";
    var o = img.overlays;
    if (!o) return "\nOverlay: loading…";
    if (o.error) return "\nOverlay could not be loaded: " + o.error;
    if (!o.count) return "";
    return "\nOverlay" + (o.count > 1 ? "s" : "") + ": " + (V.showOverlays ? o.names.join(", ") : "hidden (O shows)");
  }
  function toggleOverlays() { V.showOverlays = !V.showOverlays; draw(); }

  // --- key images: the reading radiologist marks the images the report is about ----------
  function setKeys(list) {
    V.keys = {};
    (list || []).forEach(function (k) { V.keys[k.sop + ":" + (k.frame - 1)] = true; });
  }
  function isKey(img) { return !!(img && V.keys && V.keys[imageKey(img)]); }
  async function toggleKey() {
    var img = V.images[V.index];
    if (!V.study.can_mark_key || !img) return;
    if (img.isReport || img.notImage) { message("Only an image can be a key image."); return; }
    var marked = isKey(img), path = "/studies/" + V.study.study_id + "/key-images/" + encodeURIComponent(img.sop) +
      "?frame=" + (img.frame + 1);
    // marked with the window it is seen with, which the report's PDF prints it with
    // (through its VOI LUT: no window, which the server renders the image's VOI LUT without)
    // (and the function it names, if any: linear-exact for a float map's min-max)
    if (!marked && !img.rgba && !usesLut(img)) {
      path += "&window=" + Number(V.wc.toPrecision(8)) + "," + Number(V.ww.toPrecision(8)) +
        (V.wfn ? "," + V.wfn.toLowerCase().replace("_", "-") : "");
    }
    // and as it is turned, which its print keeps
    if (!marked) path += "&rotation=" + (V.rot || 0) * 90 + (V.flip ? "&flipped=true" : "");
    try {
      var res = await get(path, "application/json", marked ? "DELETE" : "PUT");
      setKeys((await res.json()).map(function (k) { return { sop: k.sop_instance_uid, frame: k.frame }; }));
    } catch (e) { message(e.message); return; }
    message("");
    draw();
    // the report page, beside this viewer or in another tab, lists them
    if (window.BroadcastChannel) new BroadcastChannel("pacs-report").postMessage({ type: "pacs-key-images", study: V.study.study_id, at: Date.now() });
  }

  function message(text) { $("vw-message").innerText = text || ""; }
  // A passing word below the image, gone after 8 s.
  var noticeTimer = null;
  function notice(text) {
    if (!text) return;
    $("vw-notice").innerText = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { $("vw-notice").innerText = ""; }, 8000);
  }

  // --- state changes -----------------------------------------------------------------------
  async function go(index) {
    if (!V.images.length) return;
    V.index = Math.max(0, Math.min(V.images.length - 1, index));
    V.drawing = null;  // a measurement being drawn belongs to the image it was begun on
    var img = V.images[V.index];
    message("");
    if (img.isReport) {
      showReport(img);
      draw();
      if (!img.report) {
        try { await loadReport(img); } catch (e) { if (V.images[V.index] === img) { hideReport(); message(e.message); draw(); } return; }
        if (V.images[V.index] !== img) return;
        showReport(img);
        draw();
      }
      if (!V.provisional) save();
      return;
    }
    if (img.isWaveform) {
      showWaveform(img);
      draw();
      if (!img.waveform) {
        try { await loadWaveform(img); } catch (e) {
          img.isWaveform = false; img.waveformError = e.message;
          if (V.images[V.index] === img) go(V.index);  // said, with the file to download
          return;
        }
        if (V.images[V.index] !== img) return;
        showWaveform(img);
        draw();
      }
      if (!V.provisional) save();
      return;
    }
    hideReport();
    if (img.notImage) {
      var kind = (V.series && V.series.modality) || text(img.meta, "00080060") || "no pixel data";
      message(img.waveformError ? "This waveform cannot be shown: " + img.waveformError :
        kind === "PR" ? "This is a presentation state: how images of the study are to be shown. " +
          "The key images' document (Key images) shows each as seen." :
        "This object is not an image (" + kind + ") and the viewer cannot show it.");
      downloadButton($("vw-message"), img, "display:block;margin:10px auto 0");
      draw();
      return;
    }
    if (!img.values && !img.rgba) {
      draw();
      try { await loadPixels(img); } catch (e) { if (V.images[V.index] === img) { message(e.message); draw(); } return; }
      if (V.images[V.index] !== img) return;
    }
    if (!V.windowSet && !img.rgba) { var w = defaultWindow(img); V.wc = w[0]; V.ww = w[1]; V.wfn = w[2]; V.lut = !!img.voiLut; V.windowSet = true; }
    if (!V.fitted) { fit(); V.fitted = true; }
    V.needsRender = true;
    draw();
    if (!V.provisional) { save(); prefetch(); }
  }

  function prefetch() {
    var queue = [];
    for (var d = 1; d <= PREFETCH_AHEAD; d++) queue.push(V.index + d);
    for (d = 1; d <= PREFETCH_BEHIND; d++) queue.push(V.index - d);
    queue = queue.filter(function (i) { var im = V.images[i]; return im && !im.isReport && !im.notImage && !im.values && !im.rgba && !im.loading && !im.error; });
    var active = 0;
    function next() {
      while (active < PARALLEL && queue.length) {
        var im = V.images[queue.shift()];
        active++;
        loadPixels(im).catch(function () {}).then(function () { active--; next(); });
      }
    }
    next();
  }

  function fit() {
    var img = V.images[V.index];
    if (!img || !img.rows || !img.cols) return;  // a report or another object without pixels
    var size = stageSize(), cw = size[0], ch = size[1], shown = turnedSize(img);
    V.zoom = Math.min(cw / shown[0], ch / shown[1]);
    V.panX = Math.round((cw - shown[0] * V.zoom) / 2); V.panY = Math.round((ch - shown[1] * V.zoom) / 2);
  }
  function actualSize() {
    var img = V.images[V.index];
    if (!img || !img.rows || !img.cols) return;
    var size = stageSize(), cw = size[0], ch = size[1], shown = turnedSize(img);
    V.zoom = 1; V.panX = Math.round((cw - shown[0]) / 2); V.panY = Math.round((ch - shown[1]) / 2);
  }
  function reset() {
    var img = V.images[V.index];
    V.invert = false; V.windowSet = false; V.lut = false; V.rot = 0; V.flip = false; V.seenMarks = null;
    if (img) { delete V.measures[imageKey(img)]; saveMeasures(); }  // this image's measurements
    if (img && (img.values || img.rgba)) { var w = img.rgba ? [128, 256, ""] : defaultWindow(img); V.wc = w[0]; V.ww = w[1]; V.wfn = w[2]; V.lut = !!img.voiLut; V.windowSet = true; }
    fit(); V.needsRender = true; draw(); save();
  }
  // fn: the function it names ("" or none: the image's own)
  function setWindow(c, w, fn) {
    var img = V.images[V.index];
    V.wfn = fn || ""; V.wc = c; V.ww = img ? Math.max(narrowest(img), w) : Math.max(1, w);
    V.lut = false; V.windowSet = true; V.needsRender = true; draw(); save();
  }
  // back to the image's VOI LUT (a preset), its input range the window a change starts from
  function showLut() {
    var img = V.images[V.index];
    if (!img || !img.voiLut || !img.voiLut.entries) return;  // loaded with the shown pixels
    var w = defaultWindow(img); V.wc = w[0]; V.ww = w[1]; V.wfn = w[2]; V.lut = true; V.windowSet = true; V.needsRender = true; draw(); save();
  }

  var saveTimer = null;
  function saveNow() {
    clearTimeout(saveTimer);
    saveTimer = null;
    if (!V || !V.series) return;
    // Report the view to the page's Reflex state through its hidden input (React listens to
    // "input" events; the value is set with the native setter so React sees the change).
    var sink = $("vw-view-sink");
    var json = JSON.stringify({
      study: V.study.study_id, series: V.series.uid, index: V.index, wc: V.wc, ww: V.ww, wfn: V.wfn || "", lut: !!V.lut,
      // pan as the image's offset from the stage's centre, so that a reload in a window of
      // another size shows the same part of the image at the centre
      zoom: V.zoom, cx: V.panX - (V.drawnW || 0) / 2, cy: V.panY - (V.drawnH || 0) / 2, invert: V.invert,
      rot: V.rot || 0, flip: !!V.flip,
      sop: V.images[V.index] && V.images[V.index].sop, frame: V.images[V.index] && V.images[V.index].frame });
    if (sink) {
      Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(sink, json);
      sink.dispatchEvent(new Event("input", { bubbles: true }));
    }
    // The tab's own copy: written at once, so a reload gets the latest view even when the
    // last report to the server did not arrive before the page went away.
    try { sessionStorage.setItem("pacs_view_" + V.study.study_id, json); } catch (e) { /* full */ }
  }
  function save() {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(saveNow, 200);
  }
  window.addEventListener("pagehide", function () { if (saveTimer) saveNow(); });
  window.addEventListener("beforeunload", function () { if (saveTimer) saveNow(); });

  function toggleCine() {
    V.cine = !V.cine;
    clearInterval(V.cineTimer);
    if (V.cine) {
      V.fps = Number($("vw-fps").value || 10);
      V.cineTimer = setInterval(function () {
        var nextIndex = (V.index + 1) % V.images.length;
        var im = V.images[nextIndex];
        if (im.values || im.rgba) go(nextIndex); else prefetch();
      }, 1000 / V.fps);
    }
    draw();
  }

  function presets() {
    var select = $("vw-presets"), img = V.images[V.index] || V.images[0];
    select.innerHTML = "";
    var head = document.createElement("option"); head.value = ""; head.textContent = "Window presets"; select.appendChild(head);
    var list = [];
    if ((V.series && V.series.modality) === "CT" || V.study.modality === "CT") list = list.concat(CT_PRESETS);
    if (img && img.voiLut && !img.voiLut.broken) list.push([lutName(img), "lut", null]);
    if (img) list = list.concat(img.windows);
    list.push(["Auto (min-max)", null, null]);
    list.forEach(function (p) {
      var o = document.createElement("option");
      o.value = p[1] === null ? "auto" : p[1] === "lut" ? "lut" : p[1] + "," + p[2];
      o.textContent = p[0] + (p[1] === null || p[1] === "lut" ? "" : " (" + p[1] + "/" + p[2] + ")");
      select.appendChild(o);
    });
  }

  // --- tag browser ---------------------------------------------------------------------------
  // It lives in a panel of this script's own inside #vw-tags (React owns that element and would
  // reset what this script set on it): a filter box and a table of the image's header, with each
  // tag's keyword from the server's data dictionary and sequences that open into their items.
  var TAG_ROWS_MAX = 5000;
  var tagOpen = {};                     // row path -> open; a sequence starts closed, an item open
  var dict = null, dictLoading = null;  // the data dictionary, fetched once per page
  function loadDictionary() {
    if (dict || dictLoading) return;
    dictLoading = get("/dicom/dictionary", "application/json").then(function (res) { return res.json(); }).then(function (d) {
      dict = { tags: d.tags || {}, repeaters: Object.keys(d.repeaters || {}).map(function (mask) {
        return [new RegExp("^" + mask.replace(/x/g, "[0-9A-F]") + "$"), d.repeaters[mask]];
      }) };
      if (V && tagsOpen()) showTags();  // the rows are built again, now with keywords
    }).catch(function () { dictLoading = null; });  // tags show without keywords; the next open tries again
  }
  function keywordOf(tag) {
    if (!dict) return "";
    if (dict.tags[tag]) return dict.tags[tag];
    for (var i = 0; i < dict.repeaters.length; i++) if (dict.repeaters[i][0].test(tag)) return dict.repeaters[i][1];
    var group = parseInt(tag.slice(0, 4), 16), elem = parseInt(tag.slice(4), 16);
    if (elem === 0) return "GroupLength";
    if (group % 2 === 1 && elem >= 0x10 && elem <= 0xff) return "PrivateCreator";
    return group % 2 === 1 ? "(private)" : "";
  }

  function tagsPanel() {
    var outer = $("vw-tags");
    if (!outer) return null;
    var panel = outer.querySelector(".vw-tag-panel");
    if (!panel) {
      panel = document.createElement("div");
      panel.className = "vw-tag-panel";
      panel.style.cssText = "display:none;width:400px;max-height:72vh;overflow-y:auto;flex-shrink:0;font:11px monospace";
      var filter = document.createElement("input");
      filter.id = "vw-tag-filter";
      filter.type = "search";
      filter.placeholder = "Filter: tag, keyword or value";
      filter.setAttribute("aria-label", "Filter the tags by tag, keyword or value");
      filter.style.cssText = "width:100%;box-sizing:border-box;padding:3px 6px;font:12px sans-serif;border:1px solid var(--gray-7);border-radius:4px;background:var(--gray-1);color:var(--gray-12)";
      filter.addEventListener("input", function () { renderTags(); });
      var note = document.createElement("div");
      note.id = "vw-tag-note";
      note.style.cssText = "color:var(--gray-10);padding:2px 0";
      // the filter and its note stay at the top while the table scrolls under them
      var head = document.createElement("div");
      head.style.cssText = "position:sticky;top:0;z-index:1;padding-bottom:2px;background:var(--color-background)";
      head.appendChild(filter); head.appendChild(note);
      var table = document.createElement("table");
      table.id = "vw-tag-table";
      table.style.cssText = "border-collapse:collapse;width:100%";
      table.addEventListener("click", function (e) {
        var tr = e.target.closest ? e.target.closest("tr[data-path]") : null;
        if (!tr) return;
        var path = tr.getAttribute("data-path");
        tagOpen[path] = tr.getAttribute("aria-expanded") !== "true";
        renderTags();
      });
      panel.appendChild(head); panel.appendChild(table);
      outer.appendChild(panel);
    }
    return panel;
  }
  function tagsOpen() { var p = $("vw-tags") && $("vw-tags").querySelector(".vw-tag-panel"); return !!p && p.style.display !== "none"; }
  function toggleTags() {
    var panel = tagsPanel();
    if (!panel) return;
    var open = !tagsOpen();
    panel.style.display = open ? "block" : "none";
    $("vw-tags-toggle") && $("vw-tags-toggle").setAttribute("aria-pressed", open ? "true" : "false");
    if (open) loadDictionary();
    panel.removeAttribute("data-sop");
    draw();
  }

  function tagValue(e) {
    if (e.vr === "SQ") return ((e.Value || []).length) + " item(s)";
    if (e.Value) return e.Value.map(function (x) { return x && typeof x === "object" ? (x.Alphabetic || JSON.stringify(x)) : String(x); }).join("\\");
    if (e.InlineBinary) return "(" + e.vr + " binary, " + Math.floor(e.InlineBinary.length * 3 / 4) + " bytes)";
    if (e.BulkDataURI) return "(" + e.vr + " bulk data)";
    return "";
  }
  // The header as rows in document order: each {tag, kw, vr, value, depth, parent, path, kind}.
  function tagRows(meta) {
    var rows = [], more = 0;
    function walk(dataset, depth, parent, prefix) {
      Object.keys(dataset).sort().forEach(function (tag) {
        if (rows.length >= TAG_ROWS_MAX) { more++; return; }
        var e = dataset[tag], path = prefix + tag, i = rows.length;
        rows.push({ tag: "(" + tag.slice(0, 4) + "," + tag.slice(4) + ")", raw: tag, kw: keywordOf(tag), vr: e.vr || "",
                    value: tagValue(e), depth: depth, parent: parent, path: path, kind: e.vr === "SQ" ? "seq" : "" });
        if (e.vr !== "SQ") return;
        (e.Value || []).forEach(function (item, n) {
          if (rows.length >= TAG_ROWS_MAX) { more++; return; }
          var j = rows.length, ipath = path + "/" + (n + 1);
          rows.push({ tag: "(FFFE,E000)", raw: "FFFEE000", kw: "Item " + (n + 1), vr: "", value: Object.keys(item || {}).length + " element(s)",
                      depth: depth + 1, parent: i, path: ipath, kind: "item" });
          walk(item || {}, depth + 2, j, ipath + "/");
        });
      });
    }
    walk(meta || {}, 0, -1, "");
    return { rows: rows, more: more };
  }
  function isOpen(row) { return row.path in tagOpen ? tagOpen[row.path] : row.kind === "item"; }

  var TAG_CELL = "padding:1px 6px 1px 0;vertical-align:top;";
  function showTags() {
    var img = V.images[V.index], panel = tagsPanel();
    if (!panel) return;
    var key = img ? img.sop + "|" + (dict ? "k" : "") : "";
    if (panel.getAttribute("data-sop") === key) return;
    panel.setAttribute("data-sop", key);
    panel.__tags = img ? tagRows(img.meta) : null;
    if (img) renderTags();
    else { panel.querySelector("#vw-tag-table").textContent = ""; panel.querySelector("#vw-tag-note").textContent = ""; }
  }
  function renderTags() {
    var panel = tagsPanel();
    if (!panel || !panel.__tags) return;
    var rows = panel.__tags.rows, table = panel.querySelector("#vw-tag-table"), note = panel.querySelector("#vw-tag-note");
    var q = panel.querySelector("#vw-tag-filter").value.trim().toLowerCase();
    var shown = new Array(rows.length), matches = 0;
    if (q) {
      // a row is shown when it matches or holds a match (its sequence and item rows lead to it)
      var qtag = q.replace(/[(),\s]/g, "");
      rows.forEach(function (r, i) {
        var hit = r.raw.toLowerCase().indexOf(qtag) >= 0 && qtag.length > 0 || r.kw.toLowerCase().indexOf(q) >= 0 || r.value.toLowerCase().indexOf(q) >= 0;
        if (!hit) return;
        matches++;
        for (var k = i; k >= 0 && !shown[k]; k = rows[k].parent) shown[k] = true;
      });
    } else {
      rows.forEach(function (r, i) { shown[i] = r.parent < 0 || (shown[r.parent] && isOpen(rows[r.parent])); });
    }
    table.textContent = "";
    var body = document.createElement("tbody");
    rows.forEach(function (r, i) {
      if (!shown[i]) return;
      var tr = document.createElement("tr");
      if (r.kind) {
        var open = q ? true : isOpen(r);
        tr.setAttribute("data-path", r.path);
        tr.setAttribute("aria-expanded", open ? "true" : "false");
        tr.style.cursor = "pointer";
        tr.title = open ? "Click to close" : "Click to open";
      }
      var pad = "padding-left:" + (r.depth * 10) + "px;";
      var mark = r.kind ? (tr.getAttribute("aria-expanded") === "true" ? "▾ " : "▸ ") : "";
      el(tr, "td", mark + r.tag, TAG_CELL + pad + "white-space:nowrap");
      // a long keyword is cut with an ellipsis (whole in its tooltip): the value keeps the room
      var kw = el(el(tr, "td", "", TAG_CELL), "div", r.kw, "max-width:150px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;color:var(--accent-11)");
      kw.title = r.kw;
      el(tr, "td", r.vr, TAG_CELL + "color:var(--gray-10)");
      el(tr, "td", r.value.length > 160 ? r.value.slice(0, 157) + "..." : r.value, TAG_CELL + "word-break:break-all");
      body.appendChild(tr);
    });
    table.appendChild(body);
    var parts = [];
    if (q) parts.push(matches ? matches + " match" + (matches === 1 ? "" : "es") : "No tag matches \u201c" + q + "\u201d");
    if (panel.__tags.more) parts.push("The first " + TAG_ROWS_MAX + " elements are shown; " + panel.__tags.more + " more are not");
    if (!rows.length) parts.push("This object has no header to show");
    note.textContent = parts.join(" \u00b7 ");
  }

  // --- series --------------------------------------------------------------------------------
  // hint: the image to show first ({sop, frame} and, when the page has it, the instance's
  // metadata as "meta"), so that its pixels are fetched and shown while the series' metadata,
  // which can be megabytes, is still on its way.
  // Show frame ``frame`` (0-based) of instance ``sop`` of ``series``: in the series open,
  // or by opening its series at it.
  // seen (optional): how the image is to be shown, as a key image was marked or a
  // presentation state shows it: { rotation: 0|90|180|270 clockwise after a mirror, flipped,
  // window: "center,width[,function]" or "" for the image's own, marks: what it draws on the
  // image ([{kind, p, label}], optional) }
  function showImage(series, sop, frame, seen) {
    if (V.series === series && !V.provisional) {
      for (var i = 0; i < V.images.length; i++) {
        if (V.images[i].sop === sop && V.images[i].frame === frame) { applySeen(seen, sop, frame); go(i); return; }
      }
    }
    openSeries(series, null, { sop: sop, frame: frame, seen: seen });
  }
  var WINDOW_FUNCTIONS = { linear: "LINEAR", "linear-exact": "LINEAR_EXACT", sigmoid: "SIGMOID" };
  // the turn and window of `seen` (see showImage), fitted anew, and what it draws on image
  // `sop` frame `frame` (0-based); nothing without it
  function applySeen(seen, sop, frame) {
    if (!seen) return;
    V.seenMarks = seen.marks && seen.marks.length ? { key: sop + ":" + frame, marks: seen.marks } : null;
    V.rot = [0, 90, 180, 270].indexOf(Number(seen.rotation)) >= 0 ? Number(seen.rotation) / 90 : 0;
    V.flip = seen.flipped === true;
    var w = String(seen.window || "").split(",");
    if (w.length >= 2 && isFinite(w[0]) && isFinite(w[1]) && Number(w[1]) > 0) {
      V.wc = Number(w[0]); V.ww = Number(w[1]); V.wfn = WINDOW_FUNCTIONS[w[2]] || ""; V.lut = false; V.windowSet = true;
    } else {
      V.windowSet = false;  // the image's own: its first window or VOI LUT
    }
    V.fitted = false; V.needsRender = true;
  }

  // "#show=series|sop|frame(1-based)|n[|rotation|flipped(0/1)|window]": the image the page
  // around the viewer asks for (the report page, when one of its key images is clicked), and
  // how it was marked (see showImage); n makes the same image asked again a change.
  function askedByHash() {
    var m = /^#show=([^|]+)\|([^|]+)\|(\d+)(?:\|\d+\|(\d+)\|([01])\|([^|]*))?/.exec(window.location.hash || "");
    if (!m || !V) return null;
    var series = V.study.series.filter(function (s) { return s.uid === decodeURIComponent(m[1]); })[0];
    var seen = m[4] !== undefined ? { rotation: Number(m[4]), flipped: m[5] === "1", window: decodeURIComponent(m[6]) } : null;
    return series ? { series: series, sop: decodeURIComponent(m[2]), frame: Math.max(0, Number(m[3]) - 1), seen: seen } : null;
  }
  window.addEventListener("hashchange", function () {
    var asked = askedByHash();
    if (asked) { showImage(asked.series, asked.sop, asked.frame, asked.seen); V.stage.focus(); }
  });

  async function openSeries(series, restore, hint) {
    // the state it loads for: once the stage has been given another study (V replaced), what
    // arrives for this one is dropped, and this one's requests still name this one
    var v = V;
    V.series = series; V.images = []; V.index = 0; V.windowSet = false; V.fitted = false;
    V.rot = 0; V.flip = false;  // another series is seen as stored, unless restored
    V.seenMarks = null;
    V.provisional = false;
    hideReport();
    Array.prototype.forEach.call(document.querySelectorAll(".vw-thumb"), function (t) {
      t.style.outline = t.getAttribute("data-uid") === series.uid ? "2px solid #3e63dd" : "none";
    });
    message("Loading series…");
    var base = "/dicomweb/studies/" + v.study.study_uid + "/series/" + series.uid;
    if (restore) {
      if (typeof restore.wc === "number") {
        V.wc = restore.wc; V.ww = restore.ww; V.lut = !!restore.lut; V.windowSet = true;
        V.wfn = ["LINEAR", "LINEAR_EXACT", "SIGMOID"].indexOf(restore.wfn) >= 0 ? restore.wfn : "";
      }
      V.invert = !!restore.invert;
      V.rot = [0, 1, 2, 3].indexOf(restore.rot) >= 0 ? restore.rot : 0; V.flip = restore.flip === true;
    }
    if (hint) applySeen(hint.seen, hint.sop, hint.frame);
    var loaded = false, first = null, shown = null;
    if (hint) {
      shown = (hint.meta ? Promise.resolve([hint.meta])
        : get(base + "/instances/" + hint.sop + "/metadata", "application/dicom+json", null, v).then(function (r) { return r.json(); })
      ).then(function (metas) {
        var im = makeImages(metas).filter(function (x) { return x.frame === hint.frame; })[0];
        if (!im || loaded || V !== v || V.series !== series) return;
        first = im; V.images = [im]; V.provisional = true;
        return go(0).then(function () {
          // let the browser paint it before megabytes of metadata are fetched and parsed
          return new Promise(function (resolve) { requestAnimationFrame(function () { setTimeout(resolve, 0); }); });
        });
      }).catch(function () { /* the series' metadata still comes */ });
    }
    // Asked for once the first image is drawn: fetching and parsing megabytes of JSON beside
    // it would hold it up.
    var metadata = (shown || Promise.resolve()).then(function () {
      if (V !== v) return null;  // another study is shown now: its metadata is not needed
      return get(base + "/metadata", "application/dicom+json", null, v);
    }).then(function (res) { return res && res.json(); });
    var images;
    try {
      images = await metadata;
      if (V !== v) return;
      // the opening image's instance keeps its metadata object, and with it the LUTs read
      // for it (lutSpec): its other frames need not fetch them again
      if (first) images = images.map(function (m) { return val(m, "00080018") === first.sop ? first.meta : m; });
      images = makeImages(images);
    } catch (e) {
      if (V !== v) return;
      loaded = true; V.provisional = false; V.images = []; message(e.message); draw(); return;
    }
    loaded = true;
    if (V !== v || V.series !== series) return;  // another study or series was opened meanwhile
    var start = restore ? restore.index : Math.floor(images.length / 2);
    if (first) {
      for (var i = 0; i < images.length; i++) {
        if (images[i].sop === first.sop && images[i].frame === first.frame) {
          images[i] = first;  // with its pixels, fetched or on their way
          if (!restore) start = i;
          break;
        }
      }
    }
    V.images = images; V.provisional = false;
    message("");
    presets();
    await go(start);
    if (V !== v) return;
    if (restore && restore.zoom) {
      V.zoom = restore.zoom;
      if (typeof restore.cx === "number") {
        var size = stageSize();
        V.panX = restore.cx + size[0] / 2; V.panY = restore.cy + size[1] / 2;
      }
      else { V.panX = restore.panX; V.panY = restore.panY; }  // saved before views kept the centre
      V.needsRender = true; draw();
    }
  }

  function thumbnails() {
    var box = $("vw-series"), v = V;
    box.innerHTML = "";
    v.study.series.forEach(function (series) {
      var item = document.createElement("div");
      item.className = "vw-thumb"; item.setAttribute("data-uid", series.uid);
      item.style.cssText = "cursor:pointer;margin-bottom:8px;padding:4px;border-radius:6px;font-size:11px;text-align:center";
      // a dark square saying it is loading, until the preview replaces it
      var frame = document.createElement("div");
      frame.style.cssText = "position:relative;width:128px;height:128px;margin:auto;background:#000";
      var img = document.createElement("img");
      img.style.cssText = "width:128px;height:128px;object-fit:contain;display:block";
      var pending = document.createElement("span");
      pending.className = "vw-thumb-pending"; pending.textContent = "loading preview…";
      pending.style.cssText = "position:absolute;inset:0;display:flex;align-items:center;justify-content:center;color:#888";
      img.addEventListener("load", function () { pending.remove(); });
      frame.appendChild(img); frame.appendChild(pending);
      item.appendChild(frame);
      var label = document.createElement("div");
      label.textContent = (series.modality || "") + " #" + (series.number == null ? "" : series.number) + " · " + series.count + " im";
      item.appendChild(label);
      if (series.description) { var d = document.createElement("div"); d.textContent = series.description; d.style.color = "#888"; item.appendChild(d); }
      item.addEventListener("click", function () { openSeries(series); });
      box.appendChild(item);
      // the thumbnail: the series' middle image, rendered by the server
      get("/dicomweb/studies/" + v.study.study_uid + "/series/" + series.uid + "/metadata", "application/dicom+json", null, v)
        .then(function (r) { return r.json(); })
        .then(function (metas) {
          var images = makeImages(metas), mid = images[Math.floor(images.length / 2)];
          if (!mid) return null;
          if (mid.isReport || mid.notImage) { pending.textContent = mid.isReport ? "structured report" : mid.isWaveform ? "waveform" : "not an image"; return null; }
          return get("/dicomweb/studies/" + v.study.study_uid + "/series/" + series.uid + "/instances/" + mid.sop +
            "/frames/" + (mid.frame + 1) + "/rendered?quality=80", "image/jpeg", null, v);
        })
        .then(function (r) { return r && r.blob(); })
        .then(function (b) { if (b) img.src = URL.createObjectURL(b); else if (pending.textContent === "loading preview…") pending.textContent = "no preview"; })
        .catch(function () { pending.textContent = "no preview"; });
    });
  }

  // --- input ---------------------------------------------------------------------------------
  function bind() {
    var stage = V.stage;
    function inDocument(e) { return !!(e.target && e.target.closest && e.target.closest(".vw-doc")); }
    stage.addEventListener("wheel", function (e) {
      if (inDocument(e)) return;  // the report scrolls
      e.preventDefault();
      if (e.shiftKey || e.ctrlKey) {
        var p = toImage(e.clientX, e.clientY), factor = e.deltaY < 0 ? 1.1 : 1 / 1.1;
        var dpr = window.devicePixelRatio || 1, r = V.canvas.getBoundingClientRect();
        V.zoom *= factor;
        pinAt(p, (e.clientX - r.left) * dpr, (e.clientY - r.top) * dpr);
        draw(); save();
      } else go(V.index + (e.deltaY > 0 ? 1 : -1));
    }, { passive: false });
    stage.addEventListener("contextmenu", function (e) { e.preventDefault(); });
    stage.addEventListener("mousedown", function (e) {
      if (inDocument(e)) return;  // its text can be selected, its links clicked
      stage.focus();
      if (V.drawing && V.drawing.kind === "angle" && e.button === 0) {
        // an angle whose first arm is drawn: this click ends its second
        V.drawing.p = V.drawing.p.concat(toImage(e.clientX, e.clientY)); V.drawing.preview = null;
        keep(V.drawing); V.drawing = null; draw(); save(); e.preventDefault();
        return;
      }
      var mode = e.button === 2 ? "wl" : e.button === 1 ? "pan" : V.mode;
      var start = { x: e.clientX, y: e.clientY, wc: V.wc, ww: V.ww, zoom: V.zoom, panX: V.panX, panY: V.panY, p: toImage(e.clientX, e.clientY) };
      var dpr = window.devicePixelRatio || 1;
      function move(ev) {
        var dx = ev.clientX - start.x, dy = ev.clientY - start.y;
        if (mode === "wl") {
          var shown = V.images[V.index] || {}, least = shown.values ? narrowest(shown) : 1;
          var k = least >= 1 ? Math.max(0.25, start.ww / 512) : start.ww / 512;
          V.ww = Math.max(least, start.ww + dx * k * 2); V.wc = start.wc + dy * k * 2; V.lut = false; V.windowSet = true; V.needsRender = true;
        } else if (mode === "pan") { V.panX = start.panX + dx * dpr; V.panY = start.panY + dy * dpr; }
        else if (mode === "zoom") {
          V.zoom = Math.max(0.05, start.zoom * Math.pow(1.01, -dy));
          var r = V.canvas.getBoundingClientRect();
          pinAt(start.p, (start.x - r.left) * dpr, (start.y - r.top) * dpr);
        } else if (DRAWN[mode]) {
          var q = toImage(ev.clientX, ev.clientY);
          V.drawing = { kind: DRAWN[mode], p: [start.p[0], start.p[1], q[0], q[1]] };
        }
        if (!V.frame) V.frame = requestAnimationFrame(function () { V.frame = 0; draw(); });
      }
      function up() {
        window.removeEventListener("mousemove", move); window.removeEventListener("mouseup", up);
        V.dragging = false;
        var d = V.drawing;
        if (d && Math.hypot(d.p[2] - d.p[0], d.p[3] - d.p[1]) * V.zoom < 3 * dpr) V.drawing = null;  // a click
        else if (d && d.kind !== "angle") { keep(d); V.drawing = null; }
        // (an angle's first arm waits for the click that ends its second)
        draw(); save();
      }
      V.dragging = true;
      window.addEventListener("mousemove", move); window.addEventListener("mouseup", up);
    });
    // an angle's second arm follows the pointer
    stage.addEventListener("mousemove", function (e) {
      if (V.dragging || !V.drawing || V.drawing.kind !== "angle") return;
      V.drawing.preview = toImage(e.clientX, e.clientY);
      if (!V.frame) V.frame = requestAnimationFrame(function () { V.frame = 0; draw(); });
    });
    stage.addEventListener("keydown", function (e) {
      var k = e.key;
      if (k === "ArrowDown" || k === "ArrowRight" || k === "PageDown") { e.preventDefault(); go(V.index + (k === "PageDown" ? 10 : 1)); }
      else if (k === "ArrowUp" || k === "ArrowLeft" || k === "PageUp") { e.preventDefault(); go(V.index - (k === "PageUp" ? 10 : 1)); }
      else if (k === "Home") go(0);
      else if (k === "End") go(V.images.length - 1);
      else if (k === "r" || k === "R") reset();
      else if (k === "i" || k === "I") { V.invert = !V.invert; V.needsRender = true; draw(); save(); }
      else if (k === " ") { e.preventDefault(); toggleCine(); }
      else if (k === "o" || k === "O") toggleOverlays();
      else if (k === "k" || k === "K") toggleKey();
      else if (k === "t" || k === "T") turn(1, false);  // a quarter clockwise
      else if (k === "h" || k === "H") turn(0, true);  // left to right as seen
      else if (k === "Escape" && V.drawing) { V.drawing = null; draw(); }
    });
    // redraw when the stage changes size, whether the window or the layout (the tag panel) did it
    if (window.ResizeObserver) new ResizeObserver(function () { if (V) draw(); }).observe(stage);
    else window.addEventListener("resize", function () { if (V) draw(); });
  }

  document.addEventListener("click", function (e) {
    if (!V) return;
    var t = e.target && e.target.closest ? e.target.closest("button") : null;
    if (!t) return;
    var modes = { "vw-mode-wl": "wl", "vw-mode-zoom": "zoom", "vw-mode-pan": "pan", "vw-mode-measure": "measure",
      "vw-mode-roi": "roi", "vw-mode-angle": "angle" };
    if (modes[t.id]) {
      V.mode = modes[t.id]; V.drawing = null;
      Object.keys(modes).forEach(function (id) { var b = $(id); if (b) b.style.background = id === t.id ? "var(--accent-4)" : "var(--gray-2)"; });
    } else if (t.id === "vw-fit") { fit(); draw(); save(); }
    else if (t.id === "vw-actual") { actualSize(); draw(); save(); }
    else if (t.id === "vw-invert") { V.invert = !V.invert; V.needsRender = true; draw(); save(); }
    else if (t.id === "vw-rotate") turn(1, false);
    else if (t.id === "vw-flip") turn(0, true);
    else if (t.id === "vw-reset") reset();
    else if (t.id === "vw-cine") toggleCine();
    else if (t.id === "vw-overlays") toggleOverlays();
    else if (t.id === "vw-tags-toggle") toggleTags();
    else if (t.id === "vw-to-report") sendToReport();
    else if (t.id === "vw-key") toggleKey();
    else return;
    V.stage.focus();
  });
  document.addEventListener("change", function (e) {
    if (!V || !e.target) return;
    if (e.target.id === "vw-presets" && e.target.value) {
      if (e.target.value === "lut") showLut();
      else if (e.target.value === "auto") { var img = V.images[V.index]; if (img && img.values) { var mm = minMaxWindow(img); setWindow(mm[0], mm[1], mm[2]); } }
      else { var p = e.target.value.split(","); setWindow(Number(p[0]), Number(p[1])); }
      e.target.value = "";
      V.stage.focus();
    } else if (e.target.id === "vw-fps" && V.cine) { toggleCine(); toggleCine(); }
  });

  // --- start when the page has rendered its stage ------------------------------------------
  function start(stage) {
    var study;
    try { study = JSON.parse(stage.getAttribute("data-study") || "null"); } catch (e) { study = null; }
    if (!study) return false;
    V = { stage: stage, studyJson: stage.getAttribute("data-study"), canvas: $("vw-canvas"), offscreen: document.createElement("canvas"), study: study,
      images: [], index: 0, wc: 40, ww: 400, zoom: 1, panX: 0, panY: 0, invert: false, rot: 0, flip: false, mode: "wl",
      measures: {}, cine: false, fps: 10, showOverlays: true };
    window.__pacsViewer = {
      state: function () { return { index: V.index, wc: V.wc, ww: V.ww, wfn: V.wfn || "", lut: !!usesLut(V.images[V.index] || {}), zoom: V.zoom, panX: Math.round(V.panX), panY: Math.round(V.panY), count: V.images.length, sop: V.images[V.index] && V.images[V.index].sop, frame: V.images[V.index] && V.images[V.index].frame, rows: V.images[V.index] && V.images[V.index].rows, cols: V.images[V.index] && V.images[V.index].cols, series: V.series && V.series.uid, invert: V.invert, rot: V.rot, flip: V.flip,
        seenMarks: V.seenMarks ? V.seenMarks.marks.length : 0,
        shown: V.images[V.index] && V.images[V.index].rows ? turnedSize(V.images[V.index]) : null,
        measure: imageMeasures().slice(-1).map(function (m) { return { kind: m.kind, p: m.p }; })[0] || null }; },
      setWindow: setWindow, go: go, actualSize: function () { actualSize(); draw(); },
      measures: function () { return imageMeasures().map(function (m) { return m.kind; }); },
      // performance.now() when the first image was drawn (for the benchmark)
      firstShownAt: function () { return V.firstShownAt > 0 ? V.firstShownAt : null; },
    };
    // its listeners stay with the element (they act on the current V): bound once
    if (!stage.__pacsBound) { bind(); stage.__pacsBound = true; }
    setKeys(study.key_images);
    loadMeasures(V);
    if ($("vw-key")) $("vw-key").style.display = study.can_mark_key ? "inline-flex" : "none";
    stage.focus();
    // the thumbnails once the first series is in, unless the stage has another study by then
    var mine = V;
    function thumbs() { if (V === mine) thumbnails(); }
    var asked = askedByHash();
    if (asked) {
      openSeries(asked.series, null, { sop: asked.sop, frame: asked.frame, seen: asked.seen }).then(thumbs, thumbs);
      return true;
    }
    var saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem("pacs_view_" + study.study_id) ||
                         stage.getAttribute("data-view") || "null");
    } catch (e) { saved = null; }
    var restore = saved && saved.study === study.study_id ? saved : null;
    var series = (restore && study.series.filter(function (s) { return s.uid === restore.series; })[0]) || study.series[0];
    if (!series) { message("This study has no images."); return true; }
    // the first image first; the thumbnails after it
    // the page's first image comes with its metadata; one the tab left elsewhere needs it fetched
    var first = study.first && study.first.series === series.uid ? study.first : null;
    var hint = restore && restore.sop
      ? (first && first.sop === restore.sop && first.frame === (restore.frame || 0) ? first
        : { sop: restore.sop, frame: restore.frame || 0 })
      : !restore ? first : null;
    openSeries(series, restore, hint).then(thumbs, thumbs);
    return true;
  }

  function watch() {
    var stage = $("vw-stage");
    if (!stage) { if (V) { clearInterval(V.cineTimer); V = null; } return; }
    // the same stage with another study's data (a page restored with the last study's state,
    // then loaded with this one's): start again on the new study
    if (V && V.stage === stage && stage.getAttribute("data-study") === V.studyJson) return;
    if (V) clearInterval(V.cineTimer);
    V = null;
    start(stage);
  }
  // The page renders its stage after this script loads: notice it at once.
  new MutationObserver(watch).observe(document.documentElement, { childList: true, subtree: true,
    attributes: true, attributeFilter: ["data-study"] });
  setInterval(watch, 500);
  watch();
})();
