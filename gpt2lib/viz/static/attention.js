/* gpt2lib attention view: one head as a heatmap, every head as a thumbnail, and the
   text coloured by where a chosen token looks (the "head view" of bertviz).
   Keyboard: Tab to the heatmap, then arrows move over the cells, Enter follows the
   row's token; in the head grid, arrows move between heads; in the text, arrows
   move between tokens. */
G2V.attention = function (app, d) {
  var T = d.T, L = d.n_layer, H = d.n_head, scale = d.scale || 1000;
  var start = d.start || [0, 0];
  var state = {layer: start[0], head: start[1], query: T - 1, pinned: T - 1, sqrt: false, cell: null,
    mode: "heatmap", focusLines: false};
  var root = app.parentNode;

  function units(l, h, i, j) { return j > i ? 0 : d.w[l][h][i * (i + 1) / 2 + j]; }
  function weight(l, h, i, j) { return units(l, h, i, j) / scale; }
  /* The weight rounded to `digits` decimals from its stored integer, so 0.59510 shows
     as 0.60 (dividing first, then toFixed, would round a binary fraction). */
  function wtext(l, h, i, j, digits) { return G2V.fixedFromUnits(units(l, h, i, j), scale, digits); }
  function shade(t) { return state.sqrt ? Math.sqrt(t) : t; }
  function lbl(i) { return d.labels[i]; }

  /* ---- header and controls ---- */
  var title = G2V.el("div", {"class": "g2v-title"});
  var layerSel = G2V.select("Layer", L, state.layer, function (v) { choose(v, state.head); }, "layer");
  var headSel = G2V.select("Head", H, state.head, function (v) { choose(state.layer, v); }, "head");
  var sqrtBox = G2V.el("input", {type: "checkbox", "data-role": "sqrt"});
  sqrtBox.addEventListener("change", function () {
    state.sqrt = sqrtBox.checked;
    legend.querySelector(".g2v-scale").textContent = state.sqrt ? " (square-root scale)" : "";
    redraw();
  });
  var controls = G2V.el("div", {"class": "g2v-controls"}, [layerSel[0], headSel[0],
    G2V.el("label", {"class": "g2v-label", title: "colour by the square root of the weight"},
      [sqrtBox, " boost small weights"])]);
  app.appendChild(G2V.el("div", {"class": "g2v-header"}, [title, controls]));
  var note = "Rows: the token doing the looking (query). Columns: the tokens it looks at (keys). " +
    "Each row sums to 1; the hatched triangle is the future, masked out. Keyboard: Tab to the " +
    "heatmap and use the arrow keys; Enter follows a row's token in the text below.";
  if (d.total > T) note += " Showing the first " + T + " of " + d.total + " tokens " +
    "(the weights of these tokens do not depend on the ones cut off: attention is causal).";
  app.appendChild(G2V.el("div", {"class": "g2v-note", "data-role": "note", text: note}));
  var guide = G2V.el("div", {"class": "g2v-guide", "data-role": "head-summary"});
  app.appendChild(guide);

  /* ---- heatmap ---- */
  var cell = Math.max(10, Math.min(30, Math.floor(440 / T)));
  var font = Math.max(9, Math.min(12, cell - 1));
  var maxChars = Math.min(12, Math.max.apply(null, d.labels.map(function (s) { return s.length; })));
  var pad = Math.ceil(maxChars * font * 0.62) + 26;  // room for labels and index
  var size = cell * T, W = pad + size + 4;
  /* Drawn at its natural size where there is room, scaled down (viewBox) where there is not. */
  var svg = G2V.svg("svg", {width: W, height: W, viewBox: "0 0 " + W + " " + W, "class": "g2v-heat",
    "data-role": "heatmap", tabindex: 0, role: "application",
    "aria-label": "Attention heatmap: arrow keys move between cells, Enter follows the row's token"});
  var defs = G2V.svg("defs", {});
  var pat = G2V.svg("pattern", {id: root.id + "-hatch", width: 6, height: 6,
    patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)"});
  pat.appendChild(G2V.svg("rect", {width: 6, height: 6, fill: G2V.MASKED}));
  pat.appendChild(G2V.svg("line", {x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#cfcfcf", "stroke-width": 2}));
  defs.appendChild(pat); svg.appendChild(defs);
  var g = G2V.svg("g", {transform: "translate(" + pad + "," + pad + ")"});
  svg.appendChild(g);
  if (T > 1) g.appendChild(G2V.svg("path", {d: G2V.maskPath(T, cell), fill: "url(#" + root.id + "-hatch)",
    "data-role": "mask"}));
  var rects = [];
  for (var i = 0; i < T; i++) {
    rects.push([]);
    for (var j = 0; j <= i; j++) {
      var r = G2V.svg("rect", {x: j * cell, y: i * cell, width: cell, height: cell});
      g.appendChild(r); rects[i].push(r);
    }
  }
  var rowLabels = [], colLabels = [];
  for (i = 0; i < T; i++) {
    var rl = G2V.svg("text", {x: -4, y: i * cell + cell / 2, "text-anchor": "end",
      "dominant-baseline": "central", "font-size": font, "class": "g2v-axis"});
    rl.textContent = G2V.short(lbl(i), 12);
    g.appendChild(rl); rowLabels.push(rl);
    var cl = G2V.svg("text", {x: 0, y: 0, "text-anchor": "start", "dominant-baseline": "central",
      "font-size": font, "class": "g2v-axis",
      transform: "translate(" + (i * cell + cell / 2) + ",-4) rotate(-90)"});
    cl.textContent = G2V.short(lbl(i), 12);
    g.appendChild(cl); colLabels.push(cl);
  }
  var focus = G2V.svg("rect", {width: cell, height: cell, fill: "none", stroke: "#e6550d",
    "stroke-width": 2, visibility: "hidden", "data-role": "cursor"});
  g.appendChild(focus);
  var HINT = "Hover a cell (or Tab here and use the arrow keys) for its weight; click a row to follow that token below.";
  var cellInfo = G2V.el("div", {"class": "g2v-readout", "data-role": "cell", "aria-live": "polite", text: HINT});
  var heatTitle = G2V.el("div", {"class": "g2v-panel-title", "data-role": "heat-title"});
  var heatPanel = G2V.el("div", {"class": "g2v-panel g2v-heat-panel", style: {maxWidth: W + "px"}},
    [heatTitle, G2V.el("div", {"class": "g2v-modes", role: "radiogroup", "aria-label": "Draw the head as"}), svg, cellInfo]);
  var modeBox = heatPanel.children[1];
  var modeInputs = [["heatmap", "heatmap"], ["lines", "lines (several heads)"]].map(function (m) {
    var input = G2V.el("input", {type: "radio", name: root.id + "-mode", value: m[0], "data-role": "mode-" + m[0]});
    if (m[0] === "heatmap") input.checked = true;
    input.addEventListener("change", function () { if (input.checked) setMode(m[0]); });
    modeBox.appendChild(G2V.el("label", {"class": "g2v-label"}, [input, " " + m[1]]));
    return input;
  });

  /* ---- lines: queries on the left, keys on the right, one colour per head (bertviz's head view) ---- */
  var lineHeads = {};
  lineHeads[state.head] = true;
  var ROW = 16, LW = Math.ceil(maxChars * 7.3) + 8, GAP = 150, LX = LW, RX = LW + GAP;
  var LINES_W = 2 * LW + GAP, LINES_H = ROW * T + 8;
  var linesSvg = G2V.fit(G2V.svg("svg", {"data-role": "lines", "class": "g2v-lines",
    "aria-label": "Lines from each token (left) to the tokens it looks at (right); hover a token on the left"}), LINES_W, LINES_H);
  var lineLayer = G2V.svg("g", {});
  linesSvg.appendChild(lineLayer);
  var leftText = [], rightText = [];
  for (i = 0; i < T; i++) {
    var lt = G2V.svg("text", {x: LX - 6, y: 4 + i * ROW + ROW / 2, "text-anchor": "end", "dominant-baseline": "central",
      "font-size": 12, "class": "g2v-axis", "data-index": i, style: "cursor:pointer"});
    lt.textContent = G2V.short(lbl(i), 12);
    lt.addEventListener("mouseenter", (function (i) { return function () { setQuery(i, false); }; })(i));
    lt.addEventListener("mouseleave", function () { setQuery(state.pinned, false); });
    lt.addEventListener("click", (function (i) { return function () { setQuery(i, true); }; })(i));
    var rt = G2V.svg("text", {x: RX + 6, y: 4 + i * ROW + ROW / 2, "text-anchor": "start", "dominant-baseline": "central",
      "font-size": 12, "class": "g2v-axis"});
    rt.textContent = G2V.short(lbl(i), 12);
    linesSvg.appendChild(lt); linesSvg.appendChild(rt); leftText.push(lt); rightText.push(rt);
  }
  var headBoxes = G2V.el("div", {"class": "g2v-controls g2v-line-heads", "data-role": "line-heads"});
  var allButton = G2V.el("button", {type: "button", "class": "g2v-chipbtn", "data-role": "lines-all", text: "all tokens"});
  allButton.addEventListener("click", function () { state.focusLines = false; setQuery(state.pinned, false); });
  var linesPanel = G2V.el("div", {"class": "g2v-lines-panel", style: {display: "none"}}, [headBoxes, linesSvg,
    G2V.el("div", {"class": "g2v-note", text: "Each line joins a token (left) to a token it looks at (right); " +
      "the darker the line, the larger the weight. Hover a token on the left (or choose one in the text below) " +
      "to see its lines only; tick heads to overlay them."})]);
  heatPanel.insertBefore(linesPanel, cellInfo);
  function drawHeadBoxes() {
    G2V.clear(headBoxes);
    headBoxes.appendChild(G2V.el("span", {text: "Heads of layer " + state.layer + ":"}));
    for (var h = 0; h < H; h++) {
      var box = G2V.el("input", {type: "checkbox", "data-head": h, "data-role": "line-head"});
      box.checked = !!lineHeads[h];
      box.addEventListener("change", (function (h, box) { return function () {
        lineHeads[h] = box.checked; drawLines();
      }; })(h, box));
      headBoxes.appendChild(G2V.el("label", {"class": "g2v-label"}, [box,
        G2V.el("span", {"class": "g2v-swatch", style: {background: G2V.HEAD_COLOURS[h % G2V.HEAD_COLOURS.length], marginLeft: "0"}}),
        String(h)]));
    }
    headBoxes.appendChild(allButton);
  }
  function drawLines() {
    if (state.mode !== "lines") return;
    G2V.clear(lineLayer);
    var only = state.query !== state.pinned || state.focusLines ? state.query : null;
    for (var h = 0; h < H; h++) {
      if (!lineHeads[h]) continue;
      var colour = G2V.HEAD_COLOURS[h % G2V.HEAD_COLOURS.length];
      for (var i = 0; i < T; i++) {
        if (only !== null && i !== only) continue;
        for (var j = 0; j <= i; j++) {
          var w = weight(state.layer, h, i, j);
          if (w < 0.01) continue;
          lineLayer.appendChild(G2V.svg("line", {x1: LX, y1: 4 + i * ROW + ROW / 2, x2: RX, y2: 4 + j * ROW + ROW / 2,
            stroke: colour, "stroke-width": 2, "stroke-opacity": Math.min(1, shade(w)).toFixed(3),
            "data-head": h, "data-i": i, "data-j": j}));
        }
      }
    }
    leftText.forEach(function (t, k) { t.setAttribute("class", k === only ? "g2v-axis g2v-on" : "g2v-axis"); });
    root.setAttribute("data-lines", lineLayer.childNodes.length);
  }
  function setMode(mode) {
    state.mode = mode;
    root.setAttribute("data-mode", mode);
    svg.style.display = mode === "heatmap" ? "" : "none";
    linesPanel.style.display = mode === "lines" ? "" : "none";
    cellInfo.style.display = mode === "heatmap" ? "" : "none";
    if (mode === "lines") { lineHeads[state.head] = true; drawHeadBoxes(); drawLines(); }
  }

  function cellAt(ev) {
    var box = svg.getBoundingClientRect(), k = box.width / W;
    var j = Math.floor(((ev.clientX - box.left) / k - pad) / cell), i = Math.floor(((ev.clientY - box.top) / k - pad) / cell);
    return (i >= 0 && i < T && j >= 0 && j < T) ? [i, j] : null;
  }
  function markLabels(i, j) {
    rowLabels.forEach(function (t, k) { t.setAttribute("class", k === i ? "g2v-axis g2v-on" : "g2v-axis"); });
    colLabels.forEach(function (t, k) { t.setAttribute("class", k === j ? "g2v-axis g2v-on" : "g2v-axis"); });
  }
  /* Show state.cell (or nothing): the cursor, the labels and the readout, for the current head. */
  function showCell() {
    var c = state.cell;
    if (!c) {
      focus.setAttribute("visibility", "hidden"); markLabels(-1, -1);
      cellInfo.textContent = HINT;
      root.removeAttribute("data-cell");
      return;
    }
    var i = c[0], j = c[1];
    focus.setAttribute("x", j * cell); focus.setAttribute("y", i * cell);
    focus.setAttribute("visibility", "visible");
    markLabels(i, j);
    root.setAttribute("data-cell", i + "," + j);
    cellInfo.textContent = j > i
      ? lbl(i) + " (" + i + ") cannot see " + lbl(j) + " (" + j + "): it comes later (masked, weight 0)"
      : "Layer " + state.layer + " head " + state.head + ": " + lbl(i) + " (" + i + ") \u2192 " + lbl(j) +
        " (" + j + "): weight " + wtext(state.layer, state.head, i, j, 3);
  }
  svg.addEventListener("mousemove", function (ev) {
    var c = cellAt(ev);
    if (!c) return;
    state.cell = c; showCell();
    setQuery(c[0], false);
  });
  svg.addEventListener("mouseleave", function () {
    if (!keyboardFocus()) state.cell = null;
    showCell(); setQuery(state.cell ? state.cell[0] : state.pinned, false);
  });
  svg.addEventListener("click", function (ev) { var c = cellAt(ev); if (c) setQuery(c[0], true); });
  svg.addEventListener("focus", function () {
    if (!state.cell) state.cell = [state.pinned, argmaxRow(state.pinned)];
    showCell(); setQuery(state.cell[0], false);
  });
  svg.addEventListener("blur", function () { state.cell = null; showCell(); setQuery(state.pinned, false); });
  svg.addEventListener("keydown", function (ev) {
    var c = state.cell || [state.pinned, argmaxRow(state.pinned)], i = c[0], j = c[1];
    var moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      PageUp: [-5, 0], PageDown: [5, 0]};
    if (moves[ev.key]) {
      i = Math.max(0, Math.min(T - 1, i + moves[ev.key][0]));
      j = Math.max(0, Math.min(i, j + moves[ev.key][1]));
    } else if (ev.key === "Home") j = 0;
    else if (ev.key === "End") j = i;
    else if (ev.key === "Enter" || ev.key === " ") { setQuery(i, true); ev.preventDefault(); return; }
    else if (ev.key === "Escape") { svg.blur(); return; }
    else return;
    ev.preventDefault();
    state.cell = [i, j]; showCell(); setQuery(i, false);
  });
  /* Focus reached by the keyboard keeps its cursor when the mouse leaves; a click's does not. */
  function keyboardFocus() {
    if (document.activeElement !== svg) return false;
    try { return svg.matches(":focus-visible"); } catch (e) { return true; }
  }
  function argmaxRow(i) {
    var best = 0;
    for (var j = 1; j <= i; j++) if (units(state.layer, state.head, i, j) > units(state.layer, state.head, i, best)) best = j;
    return best;
  }

  /* ---- all heads as thumbnails ---- */
  var thumb = Math.max(18, Math.min(44, Math.floor(250 / H)));
  var dpr = window.devicePixelRatio || 1;
  var grid = G2V.el("div", {"class": "g2v-grid", "data-role": "grid", role: "radiogroup",
    "aria-label": "All heads: arrow keys move between heads",
    style: {gridTemplateColumns: "auto repeat(" + H + ", " + thumb + "px)"}});
  grid.appendChild(G2V.el("div", {}));
  for (var h = 0; h < H; h++) grid.appendChild(G2V.el("div", {"class": "g2v-grid-h", text: String(h)}));
  var thumbs = [];
  for (var l = 0; l < L; l++) {
    grid.appendChild(G2V.el("div", {"class": "g2v-grid-l", text: String(l)}));
    thumbs.push([]);
    for (h = 0; h < H; h++) {
      var cv = G2V.el("canvas", {width: thumb * dpr, height: thumb * dpr, "class": "g2v-thumb",
        title: "layer " + l + ", head " + h, "data-layer": l, "data-head": h, role: "radio",
        "aria-label": "layer " + l + ", head " + h, tabindex: -1,
        style: {width: thumb + "px", height: thumb + "px"}});
      cv.addEventListener("click", (function (l, h) { return function () { choose(l, h); }; })(l, h));
      grid.appendChild(cv); thumbs[l].push(cv);
    }
  }
  grid.addEventListener("keydown", function (ev) {
    var l = state.layer, h = state.head;
    if (ev.key === "ArrowUp") l = Math.max(0, l - 1);
    else if (ev.key === "ArrowDown") l = Math.min(L - 1, l + 1);
    else if (ev.key === "ArrowLeft") h = Math.max(0, h - 1);
    else if (ev.key === "ArrowRight") h = Math.min(H - 1, h + 1);
    else if (ev.key === "Home") h = 0;
    else if (ev.key === "End") h = H - 1;
    else return;
    ev.preventDefault();
    choose(l, h);
    thumbs[l][h].focus();
  });
  var gridPanel = G2V.el("div", {"class": "g2v-panel g2v-grid-panel", style: {width: Math.max(200, 24 + H * (thumb + 2)) + "px"}}, [
    G2V.el("div", {"class": "g2v-panel-title", text: "All heads (rows: layers, columns: heads). Click one, or use the arrow keys."}),
    grid]);
  app.appendChild(G2V.el("div", {"class": "g2v-row g2v-attn-main"}, [heatPanel, gridPanel]));

  function drawThumb(cv, l, h) {
    var off = document.createElement("canvas");
    off.width = T; off.height = T;
    var ctx = off.getContext("2d"), img = ctx.createImageData(T, T), masked = G2V.hexToRgb(G2V.MASKED);
    for (var i = 0; i < T; i++) for (var j = 0; j < T; j++) {
      var rgb = j > i ? masked : G2V.rampRgb(G2V.BLUES, shade(weight(l, h, i, j)));
      var o = 4 * (i * T + j);
      img.data[o] = rgb[0]; img.data[o + 1] = rgb[1]; img.data[o + 2] = rgb[2]; img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    var c2 = cv.getContext("2d");
    c2.imageSmoothingEnabled = T > cv.width;
    c2.clearRect(0, 0, cv.width, cv.height);
    c2.drawImage(off, 0, 0, cv.width, cv.height);
  }

  /* ---- the text, coloured by where one token looks ---- */
  var text = G2V.el("div", {"class": "g2v-text", "data-role": "tokens", role: "group",
    "aria-label": "The text: arrow keys choose the token whose attention is shown"});
  var toks = [];
  d.labels.forEach(function (s, i) {
    var span = G2V.el("span", {"class": "g2v-tok", "data-index": i, tabindex: -1});
    G2V.markWhitespace(span, s);
    span.addEventListener("mouseenter", function () { setQuery(i, false); });
    span.addEventListener("mouseleave", function () { setQuery(state.pinned, false); });
    span.addEventListener("click", function () { setQuery(i, true); });
    span.addEventListener("focus", function () { if (state.pinned !== i) setQuery(i, true); });
    text.appendChild(span); toks.push(span);
    if (s.indexOf("\u21b5") >= 0) text.appendChild(G2V.el("br", {}));
  });
  text.addEventListener("keydown", function (ev) {
    var i = state.pinned;
    if (ev.key === "ArrowLeft" || ev.key === "ArrowUp") i = Math.max(0, i - 1);
    else if (ev.key === "ArrowRight" || ev.key === "ArrowDown") i = Math.min(T - 1, i + 1);
    else if (ev.key === "Home") i = 0;
    else if (ev.key === "End") i = T - 1;
    else return;
    ev.preventDefault();
    setQuery(i, true); toks[i].focus();
  });
  var top = G2V.el("div", {"class": "g2v-readout", "data-role": "top", "aria-live": "polite"});
  app.appendChild(G2V.el("div", {"class": "g2v-panel g2v-wide"}, [
    G2V.el("div", {"class": "g2v-panel-title",
      text: "Where a token looks: hover a token, click to keep it (or Tab here and use the arrow keys). Darker = more attention."}),
    text, top]));
  var legend = G2V.legend();
  app.appendChild(legend);

  /* ---- which heads to look at ---- */
  var guideChips = [];
  function headChip(entry) {
    var b = G2V.el("button", {type: "button", "class": "g2v-chipbtn g2v-headchip", "data-layer": entry[0],
      "data-head": entry[1], text: "L" + entry[0] + " H" + entry[1] + " " + entry[2].toFixed(2),
      title: "open layer " + entry[0] + ", head " + entry[1]});
    b.addEventListener("click", function () { choose(entry[0], entry[1]); });
    guideChips.push(b);
    return b;
  }
  var KINDS = [
    ["induction", "Induction (weight on the token after an earlier copy of the current token)"],
    ["previous", "Previous token (weight on the token just before)"],
    ["sink", "First-token sink (weight on the first token)"],
    ["focus", "Most focused (largest weight off the first token)"]];
  if (d.heads) {
    guide.appendChild(G2V.el("div", {"class": "g2v-panel-title", text: "Where to look: heads by what they do on this text, averaged over its tokens. " +
      "Opened on layer " + start[0] + " head " + start[1] + (d.reason ? ", " + d.reason : "") + "."}));
    KINDS.forEach(function (kind) {
      var entry = d.heads[kind[0]];
      if (!entry) return;
      var line = G2V.el("div", {"class": "g2v-guide-line", "data-kind": kind[0]}, [
        G2V.el("span", {"class": "g2v-guide-kind", text: kind[1] + ": "})]);
      if (entry.heads.length) entry.heads.forEach(function (e) { line.appendChild(headChip(e)); });
      else {
        line.appendChild(document.createTextNode("none here (the highest, "));
        line.appendChild(headChip(entry.best));
        line.appendChild(document.createTextNode(")"));
      }
      guide.appendChild(line);
    });
  }

  function setQuery(i, pin) {
    if (pin) state.pinned = i;
    state.query = i;
    state.focusLines = pin || state.focusLines;
    root.setAttribute("data-query", i);
    var row = [];
    for (var j = 0; j < T; j++) {
      var span = toks[j];
      span.classList.toggle("g2v-query", j === i);
      span.classList.toggle("g2v-pinned", j === state.pinned);
      span.setAttribute("tabindex", j === state.pinned ? 0 : -1);
      if (j > i) {
        span.style.backgroundColor = ""; span.style.color = ""; span.classList.add("g2v-future");
        span.title = lbl(j) + " comes after " + lbl(i) + ": masked";
      } else {
        var t = shade(weight(state.layer, state.head, i, j));
        span.style.backgroundColor = G2V.blues(t); span.style.color = G2V.inkOn(t);
        span.classList.remove("g2v-future");
        span.title = lbl(i) + " \u2192 " + lbl(j) + ": " + wtext(state.layer, state.head, i, j, 3);
        row.push([units(state.layer, state.head, i, j), j]);
      }
    }
    row.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
    G2V.clear(top);
    top.appendChild(G2V.el("span", {"class": "g2v-strong", text: lbl(i) + " (" + i + ")"}));
    top.appendChild(document.createTextNode(" looks most at: "));
    row.slice(0, 5).forEach(function (p) {
      top.appendChild(G2V.el("span", {"class": "g2v-chip"}, [
        G2V.el("span", {"class": "g2v-mini", style: {width: Math.round(40 * p[0] / scale) + "px"}}),
        lbl(p[1]) + " " + G2V.fixedFromUnits(p[0], scale, 2)]));
    });
    drawLines();
  }

  function redraw() {
    var l = state.layer, h = state.head;
    for (var i = 0; i < T; i++) for (var j = 0; j <= i; j++) {
      rects[i][j].setAttribute("fill", G2V.blues(shade(weight(l, h, i, j))));
    }
    for (var a = 0; a < L; a++) for (var b = 0; b < H; b++) {
      var on = a === l && b === h;
      thumbs[a][b].classList.toggle("g2v-selected", on);
      thumbs[a][b].setAttribute("aria-checked", on ? "true" : "false");
      thumbs[a][b].setAttribute("tabindex", on ? 0 : -1);
      drawThumb(thumbs[a][b], a, b);
    }
    guideChips.forEach(function (c) {
      c.classList.toggle("g2v-selected", +c.getAttribute("data-layer") === l && +c.getAttribute("data-head") === h);
    });
    title.textContent = "Attention \u00b7 layer " + l + " \u00b7 head " + h;
    heatTitle.textContent = "Layer " + l + ", head " + h + ": " + T + " \u00d7 " + T + " weights";
    root.setAttribute("data-layer", l); root.setAttribute("data-head", h);
    showCell();
    setQuery(state.query, false);
    if (state.mode === "lines") { drawHeadBoxes(); drawLines(); }
  }
  function choose(l, h) {
    if (state.mode === "lines" && l === state.layer) lineHeads[h] = true;
    else if (l !== state.layer || h !== state.head) { lineHeads = {}; lineHeads[h] = true; }
    state.layer = l; state.head = h;
    layerSel[1].value = String(l); headSel[1].value = String(h);
    redraw();
  }
  redraw();
};

/* One colour per head in the lines mode (Tableau 10, then two more). */
G2V.HEAD_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
  "#9c755f", "#bab0ac", "#1b9e77", "#7570b3"];

/* The masked future (cells j > i) as one staircase: along the top from column 1 to the
   right edge, then down and left one cell per row, ending above the last row. */
G2V.maskPath = function (T, cell) {
  var size = T * cell, p = "M" + cell + ",0 H" + size + " V" + (T - 1) * cell;
  for (var i = T - 1; i >= 1; i--) p += " H" + i * cell + " V" + (i - 1) * cell;
  return p + " Z";
};

/* Colour bar 0..1 and the masked swatch. */
G2V.legend = function () {
  var bar = G2V.el("span", {"class": "g2v-bar", style: {background:
    "linear-gradient(to right," + G2V.BLUES.join(",") + ")"}});
  return G2V.el("div", {"class": "g2v-legend"}, [
    "weight 0 ", bar, " 1", G2V.el("span", {"class": "g2v-scale"}), G2V.el("span", {"class": "g2v-swatch", style: {background: G2V.MASKED}}),
    "masked (a later token)"]);
};
