// graphc stepper: walk the backward pass of one graph, step by step.
// Reads the tape (JSON in #gc-tape), hides what the current step has not computed yet,
// highlights the step's node or edge and shows its numbers.  All text goes in with
// textContent; nothing is fetched (the page's CSP allows no network at all).
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var EXPORT_CSS = ".gc-pending-val .gc-val,.gc-pending-grad .gc-grad,.gc-pending-lbl .gc-lbl{visibility:hidden}" +
    ".gc-current>path,.gc-current>polygon,.gc-current>ellipse{stroke:#ff6f00;stroke-width:4}" +
    ".gc-current>path[fill=none]{stroke-width:3}";
  var tape = JSON.parse(document.getElementById("gc-tape").textContent);
  var steps = tape.steps, N = steps.length;
  var svg = document.querySelector("#gc-graph svg");
  var $ = function (id) { return document.getElementById(id); };
  var state = { k: 0, quiz: !!tape.quiz, revealed: true, timer: null, current: null };
  var at = { val: {}, grad: {}, lbl: {} };  // element id -> index of the step that reveals it
  var els = {}, inside = {};

  steps.forEach(function (s, i) {
    at[s.kind === "value" ? "val" : s.kind === "grad" ? "grad" : "lbl"][s.target] = i;
    els[s.target] = els[s.target] || $(s.target);
  });
  Object.keys(tape.elements).forEach(function (id) {
    els[id] = els[id] || $(id);
    inside[id] = $(id + "-inside");
  });

  function hidden(table, id) {
    var i = table[id];
    if (i === undefined) return false;
    return i >= state.k || (i === state.k - 1 && !state.revealed);
  }

  function paint() {
    var k = state.k, cur = k > 0 ? steps[k - 1] : null;
    Object.keys(els).forEach(function (id) {
      var el = els[id];
      if (!el) return;
      var v = hidden(at.val, id), g = hidden(at.grad, id), l = hidden(at.lbl, id);
      el.classList.toggle("gc-pending-val", v);
      el.classList.toggle("gc-pending-grad", g);
      el.classList.toggle("gc-pending-lbl", l);
      el.classList.toggle("gc-current", !!cur && cur.target === id);
      if (inside[id]) {
        inside[id].classList.toggle("gc-pending-val", v);
        inside[id].classList.toggle("gc-pending-grad", g);
      }
    });
    if (cur && els[cur.target]) follow(els[cur.target]);
    $("gc-k").textContent = String(k);
    $("gc-slider").value = String(k);
    showStep(cur);
  }

  function follow(el) {  // scroll the picture (not the page) so the current element is in view
    var box = $("gc-graph"), r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    if (r.left < b.left) box.scrollLeft -= b.left - r.left + 20;
    else if (r.right > b.right) box.scrollLeft += r.right - b.right + 20;
    if (r.top < b.top) box.scrollTop -= b.top - r.top + 20;
    else if (r.bottom > b.bottom) box.scrollTop += r.bottom - b.bottom + 20;
  }

  function field(dl, label, key, text, secret) {
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = label;
    dd.setAttribute("data-field", key);
    dd.textContent = secret ? "?" : text;
    if (secret) dd.className = "gc-hidden";
    dl.appendChild(dt);
    dl.appendChild(dd);
  }

  function showStep(s) {
    var dl = $("gc-fields"), quiet = !state.revealed;
    dl.textContent = "";
    $("gc-title").textContent = s ? s.title : "Press → (or ▶) to start: values flow forward, then gradients flow back.";
    $("gc-formula").textContent = s && s.formula ? "L = " + s.formula : "";
    $("gc-reveal").hidden = !quiet;
    if (!s) return;
    if (s.kind === "value") field(dl, "value", "value", s.value, quiet);
    if (s.kind === "grad") {
      field(dl, "gradient", "grad", s.grad, quiet);
      field(dl, "from", "sum", s.sum, quiet);
    }
    if (s.kind === "edge") {
      field(dl, "U (upstream)", "U", s.U, false);
      field(dl, "L (local)", "L", s.L, quiet);
      field(dl, "U·L (downstream)", "UL", s.UL, quiet);
    }
    describe(s.target);
  }

  function go(k, fromNext) {
    state.k = Math.max(0, Math.min(N, k));
    state.revealed = !(fromNext && state.quiz && state.k > 0);
    paint();
  }
  function next() {
    if (!state.revealed) { reveal(); return; }
    if (state.k < N) go(state.k + 1, true);
  }
  function prev() { go(state.k - 1, false); }
  function reveal() { state.revealed = true; paint(); }
  function stop() {
    if (state.timer !== null) clearInterval(state.timer);
    state.timer = null;
    $("gc-play").textContent = "play";
  }
  function play() {
    if (state.timer !== null) { stop(); return; }
    if (state.k >= N) go(0, false);
    $("gc-play").textContent = "pause";
    state.timer = setInterval(function () {
      if (state.k >= N) { stop(); return; }
      go(state.k + 1, false);
    }, 700);
  }

  // ----- hover: shape, first entries and a heat map of a tensor ---------------------------
  function heat(pre) {
    var canvas = $("gc-heat");
    if (!pre || !pre.heat.length || !pre.heat[0].length) { canvas.hidden = true; return; }
    var rows = pre.heat.length, cols = pre.heat[0].length;
    canvas.width = cols; canvas.height = rows;
    canvas.style.width = Math.max(24, Math.min(192, cols * 8)) + "px";
    canvas.style.height = Math.max(8, Math.min(192, rows * 8)) + "px";
    var ctx = canvas.getContext("2d"), img = ctx.createImageData(cols, rows);
    for (var r = 0; r < rows; r++) {
      for (var c = 0; c < cols; c++) {
        var v = pre.heat[r][c], o = 4 * (r * cols + c), t = v / 255;
        var rgb = v < 0 ? [255, 0, 255] : [Math.round(247 - 239 * t), Math.round(251 - 203 * t), Math.round(255 - 148 * t)];
        img.data[o] = rgb[0]; img.data[o + 1] = rgb[1]; img.data[o + 2] = rgb[2]; img.data[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
    canvas.hidden = false;
  }

  function describe(id) {
    var info = tape.elements[id], text = $("gc-hover-text");
    if (!info) { text.textContent = ""; heat(null); return; }
    var shown = !hidden(at.val, id), lines = [info.name + ": " + info.op + ", " + info.type];
    var pre = shown ? info.value : null;
    if (pre) lines.push("value, first entries: " + pre.first.join(", ") + (pre.more ? ", …" : "") +
                        " (min " + pre.min + ", max " + pre.max + ")");
    if (info.grad && !hidden(at.grad, id)) lines.push("gradient, first entries: " + info.grad.first.join(", ") +
                                                 (info.grad.more ? ", …" : ""));
    text.textContent = lines.join("\n");
    text.style.whiteSpace = "pre-wrap";
    heat(pre);
  }

  // ----- frames for slides -------------------------------------------------------------------
  function frameSVG() {
    var clone = svg.cloneNode(true), style = document.createElementNS(NS, "style");
    style.textContent = EXPORT_CSS;
    clone.insertBefore(style, clone.firstChild);
    clone.setAttribute("xmlns", NS);
    return new XMLSerializer().serializeToString(clone);
  }
  function framePNG(scale) {
    scale = scale || 2;
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(new Blob([frameSVG()], { type: "image/svg+xml" }));
      var img = new Image(), box = svg.viewBox.baseVal;
      img.onload = function () {
        var canvas = document.createElement("canvas");
        canvas.width = Math.ceil(box.width * scale); canvas.height = Math.ceil(box.height * scale);
        var ctx = canvas.getContext("2d");
        ctx.fillStyle = "#ffffff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
        ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
        URL.revokeObjectURL(url);
        resolve(canvas.toDataURL("image/png"));
      };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("graphc: the SVG frame did not load")); };
      img.src = url;
    });
  }
  function download(name, href) {
    var a = document.createElement("a");
    a.href = href; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
  }
  function frameName(ext) { return (tape.graph || "graph").replace(/[^A-Za-z0-9_-]+/g, "_") + "-step" + state.k + "." + ext; }

  // ----- wiring ---------------------------------------------------------------------------------
  function jumpOptions() {
    var sel = $("gc-jump");
    Object.keys(tape.elements).forEach(function (id) {
      [["val", "value"], ["grad", "gradient"]].forEach(function (kind) {
        if (at[kind[0]][id] === undefined) return;
        var opt = document.createElement("option");
        opt.value = kind[0] + ":" + id;
        opt.textContent = tape.elements[id].name + " (" + kind[1] + ")";
        sel.appendChild(opt);
      });
    });
    sel.addEventListener("change", function () {
      var v = sel.value, cut = v.indexOf(":");
      if (cut > 0) go(at[v.slice(0, cut)][v.slice(cut + 1)] + 1, false);
      sel.value = "";
      sel.blur();  // arrow keys step again at once
    });
  }

  function wire() {
    $("gc-n").textContent = String(N);
    var slider = $("gc-slider");
    slider.max = String(N);
    slider.addEventListener("input", function () { stop(); go(Number(slider.value), false); });
    $("gc-first").addEventListener("click", function () { stop(); go(0, false); });
    $("gc-prev").addEventListener("click", function () { stop(); prev(); });
    $("gc-next").addEventListener("click", function () { stop(); next(); });
    $("gc-last").addEventListener("click", function () { stop(); go(N, false); });
    $("gc-play").addEventListener("click", play);
    $("gc-reveal").addEventListener("click", reveal);
    var fit = $("gc-fit"), graph = $("gc-graph");
    fit.checked = svg.getBoundingClientRect().width > 1.6 * graph.clientWidth;  // a big net starts whole
    graph.classList.toggle("gc-fit", fit.checked);
    fit.addEventListener("change", function () { graph.classList.toggle("gc-fit", fit.checked); });
    var quiz = $("gc-quiz");
    quiz.checked = state.quiz;
    quiz.addEventListener("change", function () { state.quiz = quiz.checked; if (!state.quiz) reveal(); });
    $("gc-export-svg").addEventListener("click", function () {
      download(frameName("svg"), URL.createObjectURL(new Blob([frameSVG()], { type: "image/svg+xml" })));
    });
    $("gc-export-png").addEventListener("click", function () {
      framePNG(2).then(function (png) { download(frameName("png"), png); });
    });
    document.addEventListener("keydown", function (e) {
      var t = e.target && e.target.tagName, type = t === "INPUT" ? e.target.type : "";
      if (t === "SELECT" || t === "TEXTAREA" || (t === "INPUT" && type !== "checkbox" && type !== "range")) return;
      if (type === "range" && e.key !== " ") return;  // the slider moves itself with arrows, Home, End
      if ((t === "BUTTON" || type === "checkbox") && e.key === " ") return;  // space clicks a focused control
      var keys = { ArrowRight: next, ArrowLeft: prev, Home: function () { go(0, false); },
                   End: function () { go(N, false); }, " ": play };
      if (!keys[e.key]) return;
      e.preventDefault();
      if (e.key !== " ") stop();
      keys[e.key]();
    });
    Object.keys(tape.elements).forEach(function (id) {
      var el = els[id];
      if (!el) return;
      el.addEventListener("mouseenter", function () { describe(id); });
      if (inside[id]) el.addEventListener("click", function () {
        inside[id].open = true;
        inside[id].scrollIntoView({ block: "nearest" });
      });
    });
    jumpOptions();
  }

  document.documentElement.classList.add("gc-js");
  wire();
  go(0, false);
  window.graphcStepper = { steps: N, go: function (k) { stop(); go(k, false); }, next: next, prev: prev,
                           reveal: reveal, play: play, stop: stop,
                           state: function () { return { k: state.k, revealed: state.revealed, quiz: state.quiz }; },
                           frameSVG: frameSVG, framePNG: framePNG };
})();
