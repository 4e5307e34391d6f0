// A job's page left open while its job runs: once the job ends, the parts that depend on its
// result (the pictures and downloads, Vary (Region) and Custom Zoom, sharing, the credits
// charged, the lineage) are fetched again in place, as a reload would show them. The card
// itself updates live already (push or poll); this catches up the rest of the page.
(function () {
  "use strict";
  var ENDED = ["succeeded", "failed", "cancelled"];

  function start() {
    var detail = document.querySelector(".detail[data-job]");
    if (!detail || !window.htmx) return;
    var code = detail.getAttribute("data-job");

    function status() {
      var card = document.getElementById("job-" + code);
      var match = card && /(?:^|\s)status-([a-z]+)(?:\s|$)/.exec(card.className);
      return match ? match[1] : "";
    }

    var before = status();
    if (ENDED.indexOf(before) >= 0) return;
    var observer = new MutationObserver(function () {
      var now = status();
      if (ENDED.indexOf(now) >= 0 && ENDED.indexOf(before) < 0) {
        observer.disconnect();
        window.htmx.ajax("GET", window.location.pathname + window.location.search, {
          target: ".detail",
          select: ".detail",
          swap: "outerHTML",
        });
      }
      before = now;
    });
    observer.observe(detail, { subtree: true, childList: true, attributes: true, attributeFilter: ["class"] });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
