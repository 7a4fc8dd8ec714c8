// The admin's one script: follows a sending's progress without reloading the page.
// Elements with data-progress="URL" are filled from that JSON every two seconds while
// the sending goes on; when its status changes, the page reloads to show the right
// buttons. Without JavaScript the page still shows the figures as they were.
(function () {
  "use strict";
  function follow(box) {
    var url = box.getAttribute("data-progress");
    var first = box.getAttribute("data-status");
    function show(data) {
      box.querySelectorAll("[data-field]").forEach(function (el) {
        var key = el.getAttribute("data-field");
        if (Object.prototype.hasOwnProperty.call(data, key)) {
          el.textContent = String(data[key]);
        }
      });
      var bar = box.querySelector("progress");
      if (bar) {
        bar.max = Math.max(data.total, 1);
        bar.value = data.done;
      }
      if (data.status !== first) {
        window.location.reload();
        return false;
      }
      return data.live;
    }
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (data && show(data)) { window.setTimeout(poll, 2000); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    if (box.getAttribute("data-live") === "true") { window.setTimeout(poll, 1000); }
  }
  document.querySelectorAll("[data-progress]").forEach(follow);
})();
