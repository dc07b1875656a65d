// Live updates for the chunksync dashboard: listens to /events (server-sent events)
// and updates every [data-field] of each folder's state; when a folder's head, conflicts
// or failed items change, re-fetches the page's live sections through htmx.
(function () {
  "use strict";
  var live = function () { return document.getElementById("live"); };
  var previous = {};

  function show(el, key, value, folder) {
    if (key === "progress") {
      var on = folder.state === "syncing" && value !== null;
      el.hidden = !on;
      if (on) { el.value = value; el.textContent = value + "%"; }
      return;
    }
    if (value === null || value === undefined || value === "") {
      value = key === "last_error" ? "none" : "";
    }
    if (el.textContent !== String(value)) { el.textContent = String(value); }
    if (key === "state") { el.dataset.state = String(value); }
  }

  function refreshSections() {
    if (typeof htmx === "undefined") { return; }
    document.querySelectorAll("[data-live-section]").forEach(function (section) {
      htmx.ajax("GET", window.location.pathname + window.location.search,
        { target: "#" + section.id, select: "#" + section.id, swap: "outerHTML" });
    });
  }

  function onStatus(event) {
    var folders = JSON.parse(event.data);
    var changed = false;
    folders.forEach(function (folder, i) {
      document.querySelectorAll('[data-folder="' + i + '"] [data-field]').forEach(function (el) {
        show(el, el.dataset.field, folder[el.dataset.field], folder);
      });
      var key = [folder.head, folder.conflicts, folder.failed_items].join("|");
      if (previous[i] !== undefined && previous[i] !== key) { changed = true; }
      previous[i] = key;
    });
    if (changed) { refreshSections(); }
    var el = live();
    if (el) { el.textContent = "Live updates: on"; }
  }

  var source = new EventSource("/events");
  source.addEventListener("status", onStatus);
  source.onerror = function () {
    var el = live();
    if (el) { el.textContent = "Live updates: reconnecting…"; }
  };
})();
