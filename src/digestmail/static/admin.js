// The admin's one script.
// - Elements with data-progress="URL" follow a sending's progress: filled from that JSON
//   every two seconds while the sending goes on; when its status changes, the page
//   reloads to show the right buttons.
// - An element with data-watch="URL" data-state="S" (the home page) asks that URL every
//   five seconds for the state of what it shows (the sendings, the next send) and
//   reloads the page when it differs, so that a sending that starts or ends shows up.
// Without JavaScript the pages still show the figures as they were when loaded.
(function () {
  "use strict";
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; });
  }
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
      getJSON(url)
        .then(function (data) {
          if (data && show(data)) { window.setTimeout(poll, 2000); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    if (box.getAttribute("data-live") === "true") { window.setTimeout(poll, 1000); }
  }
  function watch(el) {
    var url = el.getAttribute("data-watch");
    var shown = el.getAttribute("data-state");
    function poll() {
      getJSON(url)
        .then(function (data) {
          if (data && data.state !== shown) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, 5000);
        })
        .catch(function () { window.setTimeout(poll, 10000); });
    }
    window.setTimeout(poll, 5000);
  }
  document.querySelectorAll("[data-progress]").forEach(follow);
  document.querySelectorAll("[data-watch]").forEach(watch);
})();
