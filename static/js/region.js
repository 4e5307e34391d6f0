// Vary (Region)'s editor on a job's page (templates/gallery/_region_editor.html): the user
// marks the part of the picture to repaint with rectangles and lasso shapes drawn over it.
// The marks are kept in the picture's own pixels; each change writes the mask (white =
// repaint, black = keep) as a PNG data URL into the form's hidden `mask` field, which the
// server checks and scales to the picture (gallery/regions.py). Without this script the form
// still posts, and the server says that no region is marked.
(function () {
  "use strict";

  var FILL = "rgba(255, 64, 96, 0.42)";
  var EDGE = "rgba(255, 255, 255, 0.95)";

  function setUp(form) {
    var stage = form.querySelector("[data-region-stage]");
    var picture = form.querySelector("[data-region-picture]");
    var canvas = form.querySelector("[data-region-canvas]");
    var field = form.querySelector("[data-region-mask]");
    var tools = form.querySelector("[data-region-tools]");
    var undo = form.querySelector("[data-region-undo]");
    var clear = form.querySelector("[data-region-clear]");
    var status = form.querySelector("[data-region-status]");
    if (!stage || !picture || !canvas || !field || !tools) return;
    tools.hidden = false;
    stage.classList.add("drawing");

    var width = parseInt(picture.getAttribute("width"), 10) || 1024;
    var height = parseInt(picture.getAttribute("height"), 10) || 1024;
    canvas.width = width;
    canvas.height = height;
    var context = canvas.getContext("2d");
    var shapes = [];
    var drawing = null;

    function tool() {
      var checked = form.querySelector("input[name=region_tool]:checked");
      return checked ? checked.value : "rectangle";
    }

    function at(event) {
      var box = canvas.getBoundingClientRect();
      var x = ((event.clientX - box.left) / box.width) * width;
      var y = ((event.clientY - box.top) / box.height) * height;
      return [Math.max(0, Math.min(width, x)), Math.max(0, Math.min(height, y))];
    }

    function trace(target, shape) {
      target.beginPath();
      if (shape.kind === "rectangle") {
        var a = shape.points[0];
        var b = shape.points[shape.points.length - 1];
        target.rect(Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.abs(b[0] - a[0]), Math.abs(b[1] - a[1]));
      } else {
        shape.points.forEach(function (point, i) {
          if (i === 0) target.moveTo(point[0], point[1]);
          else target.lineTo(point[0], point[1]);
        });
        target.closePath();
      }
    }

    function paint() {
      context.clearRect(0, 0, width, height);
      context.lineWidth = Math.max(2, width / 300);
      shapes.concat(drawing ? [drawing] : []).forEach(function (shape) {
        trace(context, shape);
        context.fillStyle = FILL;
        context.fill();
        context.strokeStyle = EDGE;
        context.stroke();
      });
    }

    function counts(shape) {
      if (shape.points.length < 2) return false;
      var xs = shape.points.map(function (p) { return p[0]; });
      var ys = shape.points.map(function (p) { return p[1]; });
      var spanX = Math.max.apply(null, xs) - Math.min.apply(null, xs);
      var spanY = Math.max.apply(null, ys) - Math.min.apply(null, ys);
      return spanX > width / 100 && spanY > height / 100 && (shape.kind === "rectangle" || shape.points.length > 2);
    }

    function write() {
      if (!shapes.length) {
        field.value = "";
      } else {
        var mask = document.createElement("canvas");
        mask.width = width;
        mask.height = height;
        var ink = mask.getContext("2d");
        ink.fillStyle = "#000";
        ink.fillRect(0, 0, width, height);
        ink.fillStyle = "#fff";
        shapes.forEach(function (shape) {
          trace(ink, shape);
          ink.fill();
        });
        field.value = mask.toDataURL("image/png");
      }
      undo.disabled = clear.disabled = !shapes.length;
      var marked = status.getAttribute("data-marked").replace("{count}", String(shapes.length));
      status.textContent = shapes.length ? marked : status.getAttribute("data-empty");
      status.classList.remove("form-error");
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (event.button !== 0) return;
      event.preventDefault();
      canvas.setPointerCapture(event.pointerId);
      drawing = { kind: tool(), points: [at(event)] };
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) return;
      var point = at(event);
      if (drawing.kind === "rectangle") drawing.points[1] = point;
      else drawing.points.push(point);
      paint();
    });
    function finish() {
      if (!drawing) return;
      if (counts(drawing)) shapes.push(drawing);
      drawing = null;
      paint();
      write();
    }
    canvas.addEventListener("pointerup", finish);
    canvas.addEventListener("pointercancel", function () {
      drawing = null;
      paint();
    });
    undo.addEventListener("click", function () {
      shapes.pop();
      paint();
      write();
    });
    clear.addEventListener("click", function () {
      shapes = [];
      paint();
      write();
    });
    form.addEventListener("submit", function (event) {
      if (field.value) return;
      event.preventDefault();
      status.textContent = form.getAttribute("data-need") || status.getAttribute("data-empty");
      status.classList.add("form-error");
    });
    write();
  }

  function start() {
    document.querySelectorAll("form[data-region-form]").forEach(setUp);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
