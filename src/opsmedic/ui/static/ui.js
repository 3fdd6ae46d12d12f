// opsmedic dashboard: refresh the parts marked data-refresh by polling their fragment, no reload.
"use strict";
(function () {
  var EVERY_MS = 5000;
  function poll(box) {
    if (document.hidden) { return; }
    fetch(box.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (reply) {
        if (reply.redirected || reply.status === 401 || reply.status === 403) {
          window.location.assign("/ui/signin");
          return null;
        }
        return reply.ok ? reply.text() : null;
      })
      .then(function (html) {
        // The fragment is our own server-rendered, escaped HTML from the same origin.
        if (html !== null && html !== undefined) { box.innerHTML = html; }
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (box) {
      setInterval(function () { poll(box); }, EVERY_MS);
    });
  });
})();
