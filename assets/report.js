// The report page: the viewer beside the editor (an iframe of this origin) sends the
// measurements drawn on its images, and word that the key images changed; they go to the
// page's state through a hidden input (ReportState.from_viewer).
(function () {
  var KINDS = { "pacs-measurements": true, "pacs-key-images": true };
  if (window.__pacsReportListening) return;
  window.__pacsReportListening = true;
  window.addEventListener("message", function (e) {
    if (e.origin !== window.location.origin || !e.data || !KINDS[e.data.type]) return;
    var frame = document.getElementById("report-viewer"), sink = document.getElementById("rp-measure-sink");
    if (!frame || e.source !== frame.contentWindow || !sink) return;
    // the native setter, so that React sees the change and calls the state's handler
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(sink, JSON.stringify(e.data));
    sink.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
