// Batch DICOM uploader for the /upload page (plain browser JavaScript, no build step).
//
// Files are sent one request each (two at a time) to the backend's /uploads API with the
// signed-in user's bearer token, so each file streams to disk and gets its own progress bar
// and result; the batch is then committed in one call, which stores everything or nothing.
// The page (pacs_app/ui/pages/upload.py) renders the elements this script looks up by id.
(function () {
  "use strict";
  if (window.__pacsUploader) return;
  window.__pacsUploader = true;

  var PARALLEL = 2;
  var files = []; // {file, row, bar, note, state}
  var busy = false;

  function $(id) { return document.getElementById(id); }
  function api() {
    var zone = $("dropzone");
    return (zone && zone.getAttribute("data-api")) || "";
  }
  function token() { return localStorage.getItem("pacs_token") || ""; }
  function fmtSize(n) {
    if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
    return Math.max(1, Math.round(n / 1024)) + " KB";
  }
  function setSummary(text, kind) {
    var el = $("upload-summary");
    if (!el) return;
    el.textContent = text;
    el.setAttribute("data-kind", kind || "info");
    el.style.color = kind === "error" ? "#ce2c31" : kind === "ok" ? "#218358" : kind === "warning" ? "#ab6400" : "";
  }

  // The page may have been left and re-rendered (client-side navigation): forget files whose
  // rows are no longer on it.
  function syncWithPage() {
    files = files.filter(function (f) { return f.row.isConnected; });
  }

  // "Remove refused files" shows only while the list holds a refused file.
  function showRemoveRefused() {
    var button = $("remove-refused");
    // (the page hides it with a class: only an inline value shows it)
    if (button) button.style.display = files.some(function (f) { return f.state === "refused"; }) ? "inline-flex" : "none";
  }

  function addFiles(list) {
    if (busy) return;
    syncWithPage();
    var table = $("file-list");
    if (!table) return;
    for (var i = 0; i < list.length; i++) {
      var f = list[i];
      var row = document.createElement("div");
      row.className = "upload-row";
      row.style.cssText = "display:flex;gap:12px;align-items:center;padding:4px 0;" +
        "border-bottom:1px solid #e4e4e7;font-size:13px";
      var name = document.createElement("span");
      name.textContent = f.name;
      name.style.cssText = "flex:1;overflow:hidden;text-overflow:ellipsis;white-space:nowrap";
      var size = document.createElement("span");
      size.textContent = fmtSize(f.size);
      size.style.cssText = "width:70px;text-align:right;color:#71717a";
      var bar = document.createElement("progress");
      bar.max = 100; bar.value = 0; bar.style.width = "140px";
      var note = document.createElement("span");
      note.className = "upload-note";
      note.textContent = "waiting";
      note.style.cssText = "width:40%;color:#71717a";
      row.appendChild(name); row.appendChild(size); row.appendChild(bar); row.appendChild(note);
      table.appendChild(row);
      files.push({ file: f, row: row, bar: bar, note: note, state: "waiting" });
    }
    setSummary(files.length + " file(s) selected", "info");
  }

  function clearFiles() {
    if (busy) return;
    files = [];
    var table = $("file-list");
    if (table) table.textContent = "";
    showRemoveRefused();
    setSummary("", "info");
  }

  function removeRefused() {
    if (busy) return;
    syncWithPage();
    files = files.filter(function (f) {
      if (f.state === "refused") { f.row.remove(); return false; }
      f.state = "waiting"; f.bar.value = 0; f.note.textContent = "waiting";
      f.note.style.color = "#71717a";
      return true;
    });
    showRemoveRefused();
    setSummary(files.length + " file(s) selected", "info");
  }

  function request(method, path, body, onProgress) {
    return new Promise(function (resolve) {
      var xhr = new XMLHttpRequest();
      xhr.open(method, api() + path);
      xhr.setRequestHeader("Authorization", "Bearer " + token());
      if (body && !(body instanceof File)) xhr.setRequestHeader("Content-Type", "application/json");
      if (onProgress && xhr.upload) {
        xhr.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(e.loaded / e.total); };
      }
      xhr.onload = function () {
        var data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        resolve({ status: xhr.status, data: data });
      };
      xhr.onerror = function () { resolve({ status: 0, data: null }); };
      xhr.send(body instanceof File ? body : body ? JSON.stringify(body) : null);
    });
  }

  function detail(res, fallback) {
    if (res.status === 0) return "the server could not be reached";
    if (res.status === 401) return "your session has ended: sign in again";
    return (res.data && res.data.detail) ? String(res.data.detail) : fallback + " (" + res.status + ")";
  }

  function formValues() {
    function v(id) { var el = $(id); return el ? el.value : ""; }
    return {
      patient_name: v("up-patient-name"), patient_id: v("up-patient-id"),
      patient_age: v("up-patient-age"), patient_sex: v("up-patient-sex"),
      modality: v("up-modality"), body_part: v("up-body-part"),
      clinical_notes: v("up-notes"), priority: v("up-priority") || "routine",
    };
  }

  async function sendOne(batch, item) {
    item.state = "sending"; item.note.textContent = "uploading";
    var res = await request("PUT", "/uploads/" + batch + "/files?name=" +
      encodeURIComponent(item.file.name), item.file, function (p) { item.bar.value = p * 100; });
    item.bar.value = 100;
    if (res.status === 200 && res.data && res.data.ok) {
      item.state = "checked"; item.note.textContent = "checked: " + res.data.message;
    } else {
      item.state = "refused";
      item.note.textContent = res.status === 200 && res.data ? res.data.message : detail(res, "refused");
      item.note.style.color = "#ce2c31";
    }
  }

  async function start() {
    if (busy) return;
    syncWithPage();
    if (!files.length) { setSummary("Add at least one DICOM file or zip archive.", "error"); return; }
    busy = true;
    var button = $("start-upload"); if (button) button.disabled = true;
    try {
      setSummary("Opening the upload…", "info");
      var opened = await request("POST", "/uploads", formValues());
      if (opened.status !== 201) { setSummary(detail(opened, "The upload was refused"), "error"); return; }
      var batch = opened.data.batch_id;
      var queue = files.slice(), done = 0;
      async function worker() {
        while (queue.length) {
          var item = queue.shift();
          await sendOne(batch, item);
          done += 1;
          setSummary("Uploaded " + done + " of " + files.length + " file(s)…", "info");
        }
      }
      var workers = [];
      for (var i = 0; i < PARALLEL; i++) workers.push(worker());
      await Promise.all(workers);
      var refused = files.filter(function (f) { return f.state === "refused"; }).length;
      if (refused) {
        showRemoveRefused();
        await request("DELETE", "/uploads/" + batch);
        setSummary(refused + " file(s) were refused, so nothing was stored. Remove them and " +
          "upload again.", "error");
        return;
      }
      setSummary("Storing " + files.length + " file(s)…", "info");
      var committed = await request("POST", "/uploads/" + batch + "/commit");
      if (committed.status !== 201) { setSummary(detail(committed, "Storing failed"), "error"); return; }
      var result = committed.data;
      var byName = {};
      result.files.forEach(function (o) { byName[o.name] = o; });
      files.forEach(function (f) {
        var o = byName[f.file.name];
        if (!o) return;
        if (o.status === "conflict") {
          // the study holds other data under this SOP Instance UID: this file was not stored
          f.note.textContent = o.detail; f.note.style.color = "#ab6400";
          return;
        }
        f.note.textContent = o.status === "duplicate" ? "already stored (duplicate)" : "stored in " + o.study_id;
        f.note.style.color = "#218358";
      });
      var summary = "Stored " + result.stored + " file(s), " + result.duplicates +
        " duplicate(s), in " + result.studies.length + " stud" +
        (result.studies.length === 1 ? "y" : "ies") + ".";
      if (result.conflicts) {
        setSummary(summary + " " + result.conflicts + " file(s) were not stored: the study " +
          "already holds other data under their SOP Instance UIDs (see each file).", "warning");
      } else {
        setSummary(summary, "ok");
      }
      var links = $("upload-studies");
      if (links) {
        links.textContent = "";
        result.studies.forEach(function (s) {
          var a = document.createElement("a");
          a.href = "/study/" + s.study_id;
          // named by its patient: one upload can make several studies
          var patient = String(s.patient_name || "").replace(/\^/g, " ").trim() || "no patient name";
          a.textContent = "Open study " + s.study_id + ": " + patient + (s.modality ? " · " + s.modality : "") +
            " · " + s.num_instances + (s.num_instances === 1 ? " image" : " images");
          a.className = "upload-study-link";
          a.style.cssText = "display:block;color:#3e63dd;margin:4px 0";
          links.appendChild(a);
        });
      }
      files.forEach(function (f) { f.state = "stored"; });
      files = [];
    } finally {
      busy = false;
      if (button) button.disabled = false;
    }
  }

  document.addEventListener("change", function (e) {
    if (e.target && e.target.id === "file-input") { addFiles(e.target.files); e.target.value = ""; }
  });
  document.addEventListener("click", function (e) {
    var t = e.target && e.target.closest ? e.target.closest("button, #dropzone") : null;
    if (!t) return;
    if (t.id === "start-upload") start();
    else if (t.id === "clear-files") clearFiles();
    else if (t.id === "remove-refused") removeRefused();
    else if (t.id === "choose-files" || t.id === "dropzone") {
      var input = $("file-input"); if (input && !busy) input.click();
    }
  });
  // Files dropped anywhere on the upload page are taken as if dropped on the zone: a drop
  // beside it would otherwise have the browser open the file in place of the page (and leave
  // the queue, or an upload under way). The zone is outlined while files are dragged over.
  var dragTimer = null;
  function carriesFiles(e) {
    var types = e.dataTransfer && e.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
  }
  function outline(zone, on) {
    zone.style.outline = on ? "3px solid #3e63dd" : "";
    zone.style.outlineOffset = on ? "2px" : "";
  }
  document.addEventListener("dragover", function (e) {
    var zone = $("dropzone");
    if (!zone || !carriesFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
    outline(zone, !busy);
    clearTimeout(dragTimer);
    dragTimer = setTimeout(function () { outline(zone, false); }, 150); // dragged away
  });
  document.addEventListener("drop", function (e) {
    var zone = $("dropzone");
    if (!zone || !carriesFiles(e)) return;
    e.preventDefault();
    clearTimeout(dragTimer);
    outline(zone, false);
    if (busy) {
      setSummary("An upload is under way: add more files when it has finished.", "error");
      return;
    }
    addFiles(e.dataTransfer.files);
  });
  window.addEventListener("beforeunload", function (e) {
    if (busy) { e.preventDefault(); e.returnValue = ""; }
  });
  // Files chosen or dropped before this ran were not seen: say when it listens (the page
  // element outlives client-side navigation, as this script does).
  document.documentElement.setAttribute("data-uploader", "ready");
})();
