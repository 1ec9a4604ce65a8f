"""What goes in every page's ``<head>``, ahead of the app's scripts."""

from __future__ import annotations

import reflex as rx

# Files dragged from the desktop and let go on a page that does not take them would have the
# browser open the file in place of the page: a report being written, a series being read or
# a queue of uploads would be gone. This runs as the page is parsed, before the app's scripts
# load (so it also covers the first moment on the upload page, before uploader.js listens),
# and refuses such a drop: the cursor shows it is not allowed there. A page that takes files
# (uploader.js on /upload) handles the events first, on the document, and this leaves its
# drops alone.
DROP_GUARD_JS = """
(function () {
  function carriesFiles(e) {
    var types = e.dataTransfer && e.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") >= 0;
  }
  window.addEventListener("dragover", function (e) {
    if (!carriesFiles(e) || e.defaultPrevented) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "none";
  });
  window.addEventListener("drop", function (e) {
    if (carriesFiles(e)) e.preventDefault();
  });
  document.documentElement.setAttribute("data-drop-guard", "on");
})();
"""


def head_components() -> list[rx.Component]:
    return [rx.el.script(DROP_GUARD_JS)]
