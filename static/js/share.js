// A job's public link (templates/gallery/_share_controls.html): "Copy link" puts it on the
// clipboard, or (where the Clipboard API is refused: no secure context) selects it and uses
// the old copy command. The button needs the script: shown by it.
(function () {
  "use strict";

  function copyLink(input) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value).catch(function () { return fallback(input); });
    }
    return fallback(input);
  }

  function fallback(input) {
    return new Promise(function (resolve, reject) {
      input.focus();
      input.select();
      var done = false;
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      if (done) resolve();
      else reject(new Error("copy refused"));
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".share-controls .copy-link") : null;
    if (!button) return;
    var controls = button.closest(".share-controls");
    var input = controls.querySelector("input[readonly]");
    var status = controls.querySelector(".copy-status");
    if (!input || !status) return;
    copyLink(input).then(function () {
      status.textContent = button.getAttribute("data-copied");
    }, function () {
      input.select();
      status.textContent = button.getAttribute("data-failed");
    }).then(function () {
      clearTimeout(status._timer);
      status._timer = setTimeout(function () { status.textContent = ""; }, 2500);
    });
  });

  // Clicking into the link selects it whole, ready to copy by hand.
  document.addEventListener("focusin", function (event) {
    var input = event.target;
    if (input.matches && input.matches(".share-controls input[readonly]")) input.select();
  });

  function show() {
    document.querySelectorAll(".share-controls .copy-link[hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }
  document.addEventListener("DOMContentLoaded", show);
  document.addEventListener("htmx:afterSettle", show);
})();
