// The report page: the viewer beside the editor (an iframe of this origin) sends the
// measurements drawn on its images; a viewer anywhere (beside it, or in another tab) tells
// when the key images change. Both go to the page's state through a hidden input
// (ReportState.from_viewer).
(function () {
  if (window.__pacsReportListening) return;
  window.__pacsReportListening = true;
  function tell(data) {
    var sink = document.getElementById("rp-viewer-sink");
    if (!sink) return;
    // the native setter, so that React sees the change and calls the state's handler
    Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set.call(sink, JSON.stringify(data));
    sink.dispatchEvent(new Event("input", { bubbles: true }));
  }
  window.addEventListener("message", function (e) {
    if (e.origin !== window.location.origin || !e.data || e.data.type !== "pacs-measurements") return;
    var frame = document.getElementById("report-viewer");
    if (frame && e.source === frame.contentWindow) tell(e.data);
  });
  if (window.BroadcastChannel) {
    new BroadcastChannel("pacs-report").onmessage = function (e) {
      if (e.data && e.data.type === "pacs-key-images") tell(e.data);
    };
  }
})();
