// opsmedic dashboard: refresh the parts marked data-refresh by polling their fragment, no reload.
"use strict";
(function () {
  var EVERY_MS = 5000;
  // The box's HTML as the browser writes it, without its "Updated" time (data-updated).
  function bare(root) {
    var copy = root.cloneNode(true);
    copy.querySelectorAll("[data-updated]").forEach(function (e) { e.remove(); });
    return copy.innerHTML.trim();
  }
  // What has the keyboard focus inside `box`, as a selector the new content can answer.
  function focused(box) {
    var active = document.activeElement;
    if (!active || active === box || !box.contains(active)) { return null; }
    if (active.id) { return "#" + CSS.escape(active.id); }
    var href = active.getAttribute("href");
    return href ? '[href="' + CSS.escape(href) + '"]' : null;
  }
  function swap(box, html) {
    // The fragment is our own server-rendered, escaped HTML from the same origin.
    var next = document.createElement("div");
    next.innerHTML = html;
    if (bare(next) === bare(box)) {
      // Nothing changed but the time: only the time is replaced, focus and reading stay.
      var now = box.querySelector("[data-updated]"), then = next.querySelector("[data-updated]");
      if (now && then) { now.replaceWith(then); }
      return;
    }
    var keep = focused(box);
    // The summary (aria-live) stays the same element, so a screen reader hears its change.
    var live = box.querySelector("[aria-live]"), fresh = next.querySelector("[aria-live]");
    if (live && fresh) {
      var counts = fresh.innerHTML;
      fresh.replaceWith(live);
      if (live.innerHTML !== counts) { live.innerHTML = counts; }
    }
    box.replaceChildren.apply(box, Array.from(next.childNodes));
    var again = keep && box.querySelector(keep);
    if (again) { again.focus(); }
  }
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
        if (html !== null && html !== undefined) { swap(box, html); }
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-refresh]").forEach(function (box) {
      setInterval(function () { poll(box); }, EVERY_MS);
    });
  });
})();
