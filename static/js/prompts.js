// The prompt's parameters in the composer, and a job's prompt taken again.
//
// The textarea is the one source of truth: a chip writes `--name value` into it (at the
// end, in place of any earlier one) or takes it out, and every edit of the text re-lights
// the chips. The parameters' grammar, ranges and sentences come from gallery/prompts.py,
// rendered as JSON (#prompt-parameters); `read` below is that module's `parse` again, so
// what is flagged here is what the form refuses, in the same words.
(function () {
  "use strict";

  var PARAMETER = /^--([A-Za-z][A-Za-z0-9_-]*)$/;
  var DIGITS = /^[0-9]+$/;
  var RATIO = /^([0-9]+):([0-9]+)$/;

  function spec() {
    var node = document.getElementById("prompt-parameters");
    if (!node) return null;
    if (!node._spec) {
      var table = JSON.parse(node.textContent);
      table.byName = {};
      table.parameters.forEach(function (p) {
        [p.name].concat(p.aliases).forEach(function (spelling) { table.byName[spelling] = p; });
      });
      node._spec = table;
    }
    return node._spec;
  }

  function say(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, key) {
      return values[key] === undefined || values[key] === null ? "" : String(values[key]);
    });
  }

  // The words of the prompt with where each starts and ends (to take one out in place).
  function tokens(text) {
    var found = [], match, pattern = /\S+/g;
    while ((match = pattern.exec(text)) !== null) {
      found.push({ word: match[0], start: match.index, end: match.index + match[0].length });
    }
    return found;
  }

  function nameOf(word) {
    var match = PARAMETER.exec(word);
    return match ? match[1].toLowerCase() : null;
  }

  function check(table, p, value) {
    var words = table.messages;
    var names = { name: p.name, value: value, example: p.example };
    if (p.kind === "flag") return [value ? say(words.flag, names) : null, ""];
    if (!value) return [say(words.missing, names), ""];
    if (p.kind === "number") {
      var ok = DIGITS.test(value) && Number(value) >= p.low && Number(value) <= p.high;
      names.low = p.low;
      names.high = p.high;
      return ok ? [null, String(Number(value))] : [say(words.number, names), value];
    }
    if (p.kind === "choice") {
      names.choices = p.choicesText;
      var lower = value.toLowerCase();
      return p.choices.indexOf(lower) >= 0 ? [null, lower] : [say(words.choice, names), value];
    }
    if (p.kind === "ratio") {
      var match = RATIO.exec(value);
      names.low = table.ratio.low;
      names.high = table.ratio.high;
      var fits = match && [match[1], match[2]].every(function (side) {
        return Number(side) >= table.ratio.low && Number(side) <= table.ratio.high;
      });
      return fits ? [null, Number(match[1]) + ":" + Number(match[2])] : [say(words.ratio, names), value];
    }
    return [null, value];
  }

  // gallery.prompts.parse: {parameters: {name: {value, spans}}, others, problems}.
  function read(text) {
    var table = spec();
    var words = tokens(text);
    var starts = [];
    words.forEach(function (token, i) { if (nameOf(token.word)) starts.push(i); });
    var parameters = {}, others = [], problems = [];
    starts.forEach(function (start, n) {
      var end = n + 1 < starts.length ? starts[n + 1] : words.length;
      var value = words.slice(start + 1, end).map(function (t) { return t.word; }).join(" ");
      var span = { start: words[start].start, end: words[end - 1].end };
      var p = table.byName[nameOf(words[start].word)];
      if (!p) {
        others.push(words.slice(start, end).map(function (t) { return t.word; }).join(" "));
        return;
      }
      var result = check(table, p, value), problem = result[0];
      if (parameters[p.name]) {
        problem = say(table.messages.twice, { name: p.name });
        parameters[p.name].spans.push(span);
      } else {
        var clash = p.excludes.filter(function (other) { return parameters[other]; })[0];
        if (clash) problem = say(table.messages.conflict, { name: clash, other: p.name });
        parameters[p.name] = { value: result[1], spans: [span], ok: !result[0] };
      }
      if (problem && problems.indexOf(problem) < 0) problems.push(problem);
    });
    return { parameters: parameters, others: others, problems: problems };
  }

  function gcd(a, b) { return b ? gcd(b, a % b) : a; }

  function preset(table, ratio) {
    var match = RATIO.exec(ratio || "");
    if (!match || !Number(match[1]) || !Number(match[2])) return null;
    var w = Number(match[1]), h = Number(match[2]), d = gcd(w, h);
    var reduced = w / d + ":" + h / d;
    return table.presets.indexOf(reduced) >= 0 ? reduced : null;
  }

  // The text without every occurrence of these parameters (whatever their spelling).
  function without(text, names) {
    var spans = [];
    var found = read(text).parameters;
    names.forEach(function (name) { if (found[name]) spans = spans.concat(found[name].spans); });
    spans.sort(function (a, b) { return b.start - a.start; });
    spans.forEach(function (span) {
      var start = span.start;
      while (start > 0 && /\s/.test(text.charAt(start - 1))) start -= 1;
      text = text.slice(0, start) + text.slice(span.end);
    });
    return text;
  }

  // Sets (value a string: "" for a flag) or, with value null, removes a parameter.
  function write(box, name, value) {
    var table = spec(), p = table.byName[name];
    var text = without(box.value, [name].concat(value === null ? [] : p.excludes));
    if (value !== null) {
      text = text.replace(/\s+$/, "");
      text += (text ? " " : "") + "--" + name + (value ? " " + value : "");
    }
    box.value = text;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function boxOf(panel) {
    return document.getElementById(panel.getAttribute("data-for"));
  }

  function panelOf(box) {
    return box && box.id ? document.querySelector('.parameters[data-for="' + box.id + '"]') : null;
  }

  function show(box) {
    var panel = panelOf(box), table = spec();
    if (!panel || !table) return;
    var parsed = read(box.value), found = parsed.parameters;

    // The shapes: the prompt's --ar lights its preset, or "custom" with its sides.
    var ar = found.ar && found.ar.ok ? found.ar.value : null;
    var lit = ar ? preset(table, ar) || "custom" : null;
    var customOpen = panel._custom || lit === "custom";
    panel.querySelectorAll("[data-ar]").forEach(function (chip) {
      var on = chip.getAttribute("data-ar") === lit || (chip.getAttribute("data-ar") === "custom" && !lit && panel._custom);
      chip.setAttribute("aria-pressed", on ? "true" : "false");
    });
    panel.querySelector(".custom-ar").hidden = !customOpen;
    if (lit === "custom") {
      var sides = ar.split(":");
      panel.querySelectorAll("[data-ar-side]").forEach(function (input, i) {
        if (input !== document.activeElement) input.value = sides[i];
      });
    }

    panel.querySelectorAll("[data-param]").forEach(function (control) {
      if (control === document.activeElement) return;
      var entry = found[control.getAttribute("data-param")];
      if (control.type === "checkbox") control.checked = !!entry && entry.ok;
      else if (control.tagName === "SELECT") control.value = entry && entry.ok ? entry.value : "";
      else control.value = entry ? entry.value : "";
    });

    // What the prompt holds, one line each with its help and a way to take it out.
    var holds = panel.querySelector(".holds");
    holds.textContent = "";
    var names = Object.keys(found);
    var head = document.createElement("li");
    head.className = "holds-head";
    head.textContent = names.length || parsed.others.length
      ? panel.getAttribute("data-holds") : panel.getAttribute("data-none");
    holds.appendChild(head);
    names.forEach(function (name) {
      var p = table.byName[name], entry = found[name];
      var item = document.createElement("li");
      item.className = entry.ok ? "held" : "held bad";
      var code = document.createElement("code");
      code.textContent = "--" + name + (entry.value ? " " + entry.value : "");
      var help = document.createElement("span");
      help.className = "held-help";
      help.textContent = p.label + ": " + p.help;
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "held-remove";
      remove.setAttribute("data-remove", name);
      remove.setAttribute("aria-label", panel.getAttribute("data-remove") + " --" + name);
      remove.textContent = "×";
      item.append(code, " ", help, " ", remove);
      holds.appendChild(item);
    });
    parsed.others.forEach(function (other) {
      var item = document.createElement("li");
      item.className = "held other";
      var code = document.createElement("code");
      code.textContent = other;
      var help = document.createElement("span");
      help.className = "held-help";
      help.textContent = panel.getAttribute("data-other");
      item.append(code, " ", help);
      holds.appendChild(item);
    });

    // What the form would refuse, beside the prompt, before anything is sent.
    var list = document.getElementById("prompt-problems");
    if (list) {
      list.textContent = "";
      parsed.problems.forEach(function (problem) {
        var li = document.createElement("li");
        li.textContent = problem;
        list.appendChild(li);
      });
      list.hidden = !parsed.problems.length;
    }
    if (parsed.problems.length) box.setAttribute("aria-invalid", "true");
    else box.removeAttribute("aria-invalid");
  }

  function start() {
    document.querySelectorAll(".parameters[data-for]").forEach(function (panel) {
      var box = boxOf(panel);
      if (!box || !spec()) return;
      panel.hidden = false;
      show(box);
    });
  }

  document.addEventListener("DOMContentLoaded", start);
  document.addEventListener("htmx:afterSettle", start);

  document.addEventListener("input", function (event) {
    var target = event.target;
    if (!target.matches) return;
    if (target.matches("textarea") && panelOf(target)) { show(target); return; }
    var panel = target.closest(".parameters[data-for]");
    if (!panel) return;
    var box = boxOf(panel);
    if (target.matches("[data-ar-side]")) {
      var sides = Array.prototype.map.call(panel.querySelectorAll("[data-ar-side]"), function (input) {
        return input.value.trim();
      });
      if (sides[0] && sides[1]) write(box, "ar", sides[0] + ":" + sides[1]);
      return;
    }
    var name = target.getAttribute("data-param");
    if (!name) return;
    if (target.type === "checkbox") {
      write(box, name, target.checked ? target.value === "on" ? "" : target.value : null);
    } else {
      var value = target.value.trim().replace(/\s+/g, " ");
      write(box, name, value ? value : null);
    }
  });

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("button") : null;
    if (!target) return;
    var panel = target.closest(".parameters[data-for]");
    if (panel && target.hasAttribute("data-ar")) {
      var box = boxOf(panel), shape = target.getAttribute("data-ar");
      var pressed = target.getAttribute("aria-pressed") === "true";
      if (shape === "custom") {
        panel._custom = !pressed;
        if (pressed) write(box, "ar", null);
        else show(box);
        if (!pressed) panel.querySelector("[data-ar-side]").focus();
      } else {
        panel._custom = false;
        write(box, "ar", pressed ? null : shape);
      }
      return;
    }
    if (panel && target.hasAttribute("data-remove")) {
      var name = target.getAttribute("data-remove");
      var boxToEdit = boxOf(panel);
      write(boxToEdit, name, null);
      boxToEdit.focus();
    }
  });

  // Copy prompt: the job's final prompt on the clipboard, or (where the Clipboard API is
  // refused: no secure context) the old copy command on a hidden textarea.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallback(text); });
    }
    return fallback(text);
  }

  function fallback(text) {
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var done = false;
      try { done = document.execCommand("copy"); } catch (e) { done = false; }
      area.remove();
      if (done) resolve();
      else reject(new Error("copy refused"));
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".copy-prompt") : null;
    if (!button) return;
    var tools = button.closest(".prompt-tools");
    var status = tools.querySelector(".copy-status");
    copyText(tools.getAttribute("data-prompt")).then(function () {
      status.textContent = button.getAttribute("data-copied");
    }, function () {
      status.textContent = button.getAttribute("data-failed");
    }).then(function () {
      clearTimeout(status._timer);
      status._timer = setTimeout(function () { status.textContent = ""; }, 2500);
    });
  });

  // Use as prompt: on the studio, into the composer (filled, focused, at its end); on a
  // job's page, the link to the studio with ?prompt= does it.
  document.addEventListener("click", function (event) {
    var link = event.target.closest ? event.target.closest("a.use-prompt") : null;
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button) return;
    var box = document.querySelector("#imagine-form textarea[name=prompt]");
    if (!box) return;
    event.preventDefault();
    box.value = link.closest(".prompt-tools").getAttribute("data-prompt");
    box.dispatchEvent(new Event("input", { bubbles: true }));
    box.scrollIntoView({ block: "center" });
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  });

  // The copy buttons need the script: shown by it.
  function tools() {
    document.querySelectorAll(".prompt-tools .copy-prompt[hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }
  document.addEventListener("DOMContentLoaded", tools);
  document.addEventListener("htmx:afterSettle", tools);

  window.mjweb = window.mjweb || {};
  window.mjweb.readPrompt = function (text) {
    var parsed = read(text), values = {};
    Object.keys(parsed.parameters).forEach(function (name) { values[name] = parsed.parameters[name].value; });
    return { parameters: values, others: parsed.others, problems: parsed.problems };
  };
})();
