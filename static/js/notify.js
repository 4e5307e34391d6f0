// The tab says how the jobs stand, whatever page of the studio it shows: its title counts
// the jobs running, "(2) Studio · mjweb", and the favicon carries the same number on an amber
// dot. A job that ends while the tab is in the background leaves a green check on the
// favicon (its result is waiting to be seen) until the tab is shown again, and (opted in
// with the studio's button) raises a desktop notification. Read from the cards: a card
// (article#job-<code>, its status in its class, status-running...) seen running on this
// page comes back succeeded or failed; a card finished when the page loaded, or told once,
// is never told again.
(function () {
  "use strict";
  var RUNNING = ["queued", "submitted", "running", "modal"];
  var WORKING = ["queued", "submitted", "running"]; // counted: a question waits for the user
  var FINISHED = ["succeeded", "failed"];
  var STORE = "mjweb.notify"; // "on" once the user turned desktop notifications on here
  var COUNTED = /^\(\d+\) /; // our count in front of the page's own title
  var seen = {}; // job code -> the status its card last showed
  var told = {}; // job codes already counted (and notified)
  var unseen = 0; // finished while hidden, not yet seen
  var icon = document.querySelector("link[rel~='icon']");
  var iconHref = icon ? icon.getAttribute("href") : null;
  var iconType = icon ? icon.getAttribute("type") : null;
  var iconImage = null; // the favicon, loaded once, drawn under each badge
  var badge = ""; // what the favicon shows now: "" (plain), "3", "✓"

  function hidden() {
    return document.visibilityState === "hidden";
  }

  function statusOf(card) {
    var match = /(?:^|\s)status-([a-z]+)(?:\s|$)/.exec(card.className);
    return match ? match[1] : "";
  }

  function scan() {
    var working = {};
    document.querySelectorAll("article.card[id^='job-']").forEach(function (card) {
      var code = card.id.slice(4);
      var status = statusOf(card);
      var before = seen[code];
      seen[code] = status;
      if (WORKING.indexOf(status) >= 0) working[code] = true;
      if (RUNNING.indexOf(before) >= 0 && FINISHED.indexOf(status) >= 0 && !told[code]) {
        told[code] = true;
        finished(card, code, status);
      }
    });
    show(Object.keys(working).length);
  }

  function finished(card, code, status) {
    if (!hidden()) return;
    unseen += 1;
    notify(card, code, status);
  }

  // The title and the favicon.
  function show(working) {
    var plain = document.title.replace(COUNTED, "");
    var title = working > 0 ? "(" + working + ") " + plain : plain;
    if (document.title !== title) document.title = title;
    var wanted = working > 0 ? (working > 9 ? "9+" : String(working)) : unseen > 0 ? "✓" : "";
    if (wanted !== badge) drawBadge(wanted);
  }

  function drawBadge(text) {
    if (!icon || !iconHref) return;
    if (!text) {
      badge = "";
      if (icon.getAttribute("href") !== iconHref) {
        if (iconType) icon.setAttribute("type", iconType);
        else icon.removeAttribute("type");
        icon.setAttribute("href", iconHref);
      }
      return;
    }
    if (!iconImage) {
      iconImage = new Image();
      iconImage.addEventListener("load", scan);
      iconImage.src = iconHref;
      return;
    }
    if (!iconImage.complete || !iconImage.naturalWidth) return; // drawn once it loads
    var canvas = document.createElement("canvas");
    canvas.width = 64;
    canvas.height = 64;
    var pen = canvas.getContext("2d");
    if (!pen) return;
    try {
      pen.drawImage(iconImage, 0, 0, 64, 64);
    } catch (error) {
      // A browser that cannot draw the SVG: the dot alone still says it.
    }
    pen.beginPath();
    pen.arc(42, 22, 22, 0, 2 * Math.PI);
    pen.fillStyle = text === "✓" ? "#16a34a" : "#d97706";
    pen.fill();
    pen.fillStyle = "#fff";
    pen.font = "bold 30px sans-serif";
    pen.textAlign = "center";
    pen.textBaseline = "middle";
    pen.fillText(text, 42, 24);
    icon.setAttribute("type", "image/png");
    icon.setAttribute("href", canvas.toDataURL("image/png"));
    badge = text;
  }

  document.addEventListener("visibilitychange", function () {
    if (hidden()) return;
    unseen = 0; // seen now
    scan();
  });

  // Desktop notifications: only after the button was pressed, never asked for on load.
  var toggle = document.getElementById("notify-toggle");

  function supported() {
    return typeof window.Notification === "function";
  }

  function stored() {
    try {
      return window.localStorage.getItem(STORE);
    } catch (error) {
      return null;
    }
  }

  function store(value) {
    try {
      if (value) window.localStorage.setItem(STORE, value);
      else window.localStorage.removeItem(STORE);
    } catch (error) {
      // No storage (a private window): on for this page only.
    }
  }

  var onHere = false; // turned on on this page when storage is refused

  function wanted() {
    return supported() && window.Notification.permission === "granted" &&
      (onHere || stored() === "on");
  }

  function render() {
    if (!toggle) return;
    if (!supported() || window.Notification.permission === "denied") {
      toggle.hidden = true;
      return;
    }
    var on = wanted();
    toggle.hidden = false;
    toggle.setAttribute("aria-pressed", on ? "true" : "false");
    toggle.textContent = toggle.getAttribute(on ? "data-on" : "data-off") || toggle.textContent;
  }

  function turnOn() {
    onHere = true;
    store("on");
    render();
  }

  if (toggle) {
    toggle.addEventListener("click", function () {
      if (wanted()) {
        onHere = false;
        store(null);
        render();
        return;
      }
      if (!supported()) return;
      if (window.Notification.permission === "granted") {
        turnOn();
        return;
      }
      var answered = false;
      var answer = function (permission) {
        if (answered) return;
        answered = true;
        if (permission === "granted") turnOn();
        else render();
      };
      // Older browsers take a callback and return nothing; newer ones return a promise.
      var asked = window.Notification.requestPermission(answer);
      if (asked && typeof asked.then === "function") asked.then(answer, render);
    });
    render();
  }

  function notify(card, code, status) {
    if (!toggle || !wanted()) return;
    var title = toggle.getAttribute(status === "failed" ? "data-failed" : "data-finished");
    var prompt = card.querySelector(".prompt");
    var body = prompt ? prompt.textContent.trim().replace(/\s+/g, " ") : "";
    if (Array.from(body).length > 80) body = Array.from(body).slice(0, 79).join("") + "…";
    var options = { body: body, tag: "job-" + code };
    var image = card.querySelector("img.result");
    if (image && image.src) options.icon = image.src;
    try {
      var note = new window.Notification(title || "", options);
      note.onclick = function () {
        window.focus();
        note.close();
      };
    } catch (error) {
      // A browser that only notifies from a service worker (Chrome on Android): the title
      // and the favicon still say it.
    }
  }

  scan();
  // A card is swapped in whole (outerHTML, out of band), and htmx settles its attributes
  // (its class, so its status) a moment later: both are watched.
  new MutationObserver(scan).observe(document.body, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["class"],
  });
})();
