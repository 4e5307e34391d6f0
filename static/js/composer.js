// The prompt's character counter: the textarea has no maxlength (a browser would cut a
// pasted prompt silently), so the page says how long it is and, past the limit, by how
// much; the server refuses an over-long prompt with the same words.
(function () {
  "use strict";
  function update(box) {
    var counter = document.getElementById(box.getAttribute("data-counter"));
    if (!counter) return;
    var limit = parseInt(box.getAttribute("data-limit"), 10);
    // As the server counts: surrounding spaces dropped, characters (not UTF-16 units).
    var length = Array.from(box.value.trim()).length;
    counter.hidden = false;
    counter.classList.toggle("over", length > limit);
    counter.classList.toggle("near", length <= limit && length > limit * 0.9);
    counter.textContent = length > limit
      ? length + " / " + limit + " characters: " + (length - limit) +
        " over the limit. Shorten the prompt before you press Imagine."
      : length + " / " + limit + " characters";
  }
  function all() {
    document.querySelectorAll("textarea[data-limit][data-counter]").forEach(update);
  }
  document.addEventListener("input", function (event) {
    var box = event.target;
    if (box.matches && box.matches("textarea[data-limit][data-counter]")) update(box);
  });
  document.addEventListener("DOMContentLoaded", all);
  document.addEventListener("htmx:afterSettle", all);
})();
