// Images served by the API need the user's bearer token, which an <img src> cannot send:
// for every <img data-auth-src="/path">, fetch it with the token and show it as a blob URL.
(function () {
  "use strict";
  if (window.__pacsAuthImg) return;
  window.__pacsAuthImg = true;
  function load(img) {
    var src = img.getAttribute("data-auth-src");
    if (!src || img.getAttribute("data-auth-loaded") === src) return;
    img.setAttribute("data-auth-loaded", src);
    fetch(src, { headers: { Authorization: "Bearer " + (localStorage.getItem("pacs_token") || "") } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.blob(); })
      .then(function (blob) { img.src = URL.createObjectURL(blob); })
      .catch(function () { img.alt = "The image could not be loaded."; });
  }
  function scan() { document.querySelectorAll("img[data-auth-src]").forEach(load); }
  new MutationObserver(scan).observe(document.documentElement, {
    childList: true, subtree: true, attributes: true, attributeFilter: ["data-auth-src"] });
  scan();
})();
