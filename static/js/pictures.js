// The picture pickers ([data-pictures]: image prompts, Blend, Describe): the chosen files
// shown as thumbnails, each removable; pictures pasted into the form or dropped on the
// picker are added to its file input. The input stays the one source of what is sent, so
// the form posts the same with JavaScript or without.
(function () {
  "use strict";
  function input(picker) {
    return picker.querySelector("input[type=file]");
  }
  function most(picker) {
    return parseInt(picker.getAttribute("data-most"), 10) || 1;
  }
  function setFiles(picker, files) {
    var box = input(picker);
    var transfer = new DataTransfer();
    files.slice(0, most(picker)).forEach(function (file) { transfer.items.add(file); });
    box.files = transfer.files;
    render(picker, files.length > most(picker));
  }
  function render(picker, overflow) {
    var list = picker.querySelector(".picture-list");
    list.querySelectorAll("img").forEach(function (img) { URL.revokeObjectURL(img.src); });
    list.textContent = "";
    Array.from(input(picker).files).forEach(function (file, position) {
      var item = document.createElement("li");
      var img = document.createElement("img");
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", picker.getAttribute("data-remove-label") + ": " + file.name);
      remove.addEventListener("click", function () {
        var kept = Array.from(input(picker).files).filter(function (_, at) { return at !== position; });
        setFiles(picker, kept);
      });
      item.append(img, remove);
      list.append(item);
    });
    if (overflow) {
      var note = document.createElement("li");
      note.className = "form-error";
      note.textContent = picker.getAttribute("data-too-many");
      list.append(note);
    }
  }
  function add(picker, files) {
    var images = Array.from(files).filter(function (file) { return /^image\//.test(file.type); });
    if (!images.length) return false;
    var current = most(picker) === 1 ? [] : Array.from(input(picker).files);
    setFiles(picker, current.concat(images));
    return true;
  }
  document.addEventListener("change", function (event) {
    var picker = event.target.closest && event.target.closest("[data-pictures]");
    if (picker && event.target === input(picker)) render(picker, false);
  });
  document.addEventListener("paste", function (event) {
    var form = event.target.closest && event.target.closest("form");
    var picker = form && form.querySelector("[data-pictures]");
    if (!picker || !event.clipboardData || !event.clipboardData.files.length) return;
    if (add(picker, event.clipboardData.files)) {
      event.preventDefault();
      var details = picker.closest("details");
      if (details) details.open = true;
    }
  });
  document.addEventListener("dragover", function (event) {
    if (event.target.closest && event.target.closest("[data-pictures]")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    var picker = event.target.closest && event.target.closest("[data-pictures]");
    if (!picker) return;
    event.preventDefault();
    add(picker, event.dataTransfer.files);
  });
  // A job made: its pictures went with it; the picker is emptied for the next one.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!event.detail.successful || !form.matches || !form.matches("form")) return;
    var xhr = event.detail.xhr;
    if (xhr && xhr.getResponseHeader("HX-Retarget")) return;  // refused: keep them
    form.querySelectorAll("[data-pictures]").forEach(function (picker) { setFiles(picker, []); });
  });
})();
