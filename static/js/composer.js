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
    // The words come from the page (data-within, data-over), in the reader's language.
    var words = length > limit
      ? counter.getAttribute("data-over") ||
        "{length} / {limit} characters: {over} over the limit. Shorten the prompt before you press Imagine."
      : counter.getAttribute("data-within") || "{length} / {limit} characters";
    counter.textContent = words.replace("{length}", length).replace("{limit}", limit)
      .replace("{over}", length - limit);
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

  // Enter in the prompt generates, Shift+Enter starts a new line; never while an input
  // method is composing (Chinese, Japanese: Enter there picks the characters).
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || event.altKey || event.ctrlKey ||
        event.metaKey || event.isComposing || event.keyCode === 229) return;
    if (!box.matches || !box.matches("#imagine-form textarea[name=prompt]")) return;
    event.preventDefault();
    var form = box.form;
    if (form && form.requestSubmit) form.requestSubmit();
  });

  // Escape closes a full-size view (a :target lightbox) as its Close link does.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var open = document.querySelector(".lightbox:target .lightbox-close");
    if (open) {
      event.preventDefault();
      open.click();
    }
  });

  // The speed chosen on a card's buttons: each button shows what a press costs in it
  // (its `data-prices`, "mode:credits" words; an empty price: none is set).
  document.addEventListener("change", function (event) {
    var select = event.target;
    if (!select.matches || !select.matches(".actions .press-mode select")) return;
    select.form.querySelectorAll("button[data-prices]").forEach(function (button) {
      var credits = null;
      button.getAttribute("data-prices").split(" ").forEach(function (word) {
        var parts = word.split(":");
        if (parts[0] === select.value) credits = parts[1];
      });
      var price = button.querySelector(".price");
      if (price && credits !== null) price.textContent = credits === "" ? "–" : credits;
    });
  });
})();
