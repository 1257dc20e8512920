(function () {
  "use strict";
  var root = document.querySelector("[data-live-seconds]");
  if (!root || !window.fetch || !window.DOMParser) return;
  var seconds = Number(root.getAttribute("data-live-seconds")) || 15;
  var busy = false;

  function readerIsBusy() {
    var focused = document.activeElement;
    if (focused && focused !== document.body && focused.closest("[data-live]")) return true;
    return Boolean(window.getSelection && String(window.getSelection()));
  }

  function swap(fresh) {
    var parts = document.querySelectorAll("[data-live]");
    for (var i = 0; i < parts.length; i++) {
      var part = parts[i];
      var next = part.id && fresh.getElementById(part.id);
      if (!next || next.innerHTML === part.innerHTML) continue;
      var scroller = part.closest(".scroll");
      var left = scroller ? scroller.scrollLeft : 0;
      part.replaceWith(document.importNode(next, true));
      if (scroller) scroller.scrollLeft = left;
    }
  }

  function refresh() {
    if (busy || document.hidden || readerIsBusy()) return;
    busy = true;
    fetch(window.location.href, {
      headers: { Accept: "text/html" },
      credentials: "same-origin",
      cache: "no-store"
    })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(function (html) {
        swap(new DOMParser().parseFromString(html, "text/html"));
        root.removeAttribute("data-live-failed");
      })
      .catch(function () {
        root.setAttribute("data-live-failed", "");
      })
      .then(function () {
        busy = false;
      });
  }

  window.setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) refresh();
  });
})();
