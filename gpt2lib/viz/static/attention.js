/* gpt2lib attention view: one head as a heatmap, every head as a thumbnail, and the
   text coloured by where a chosen token looks (the "head view" of bertviz). */
G2V.attention = function (app, d) {
  var T = d.T, L = d.n_layer, H = d.n_head;
  var state = {layer: 0, head: 0, query: T - 1, pinned: T - 1, sqrt: false};
  var root = app.parentNode;

  function weight(l, h, i, j) { return j > i ? 0 : d.w[l][h][i * (i + 1) / 2 + j] / 1000; }
  function shade(t) { return state.sqrt ? Math.sqrt(t) : t; }
  function lbl(i) { return d.labels[i]; }

  /* ---- header and controls ---- */
  var title = G2V.el("div", {"class": "g2v-title"});
  var layerSel = G2V.select("Layer", L, 0, function (v) { choose(v, state.head); }, "layer");
  var headSel = G2V.select("Head", H, 0, function (v) { choose(state.layer, v); }, "head");
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
    "Each row sums to 1; the grey triangle is the future, masked out.";
  if (d.total > T) note += " Showing the first " + T + " of " + d.total + " tokens " +
    "(the weights of these tokens do not depend on the ones cut off: attention is causal).";
  app.appendChild(G2V.el("div", {"class": "g2v-note", "data-role": "note", text: note}));

  /* ---- heatmap ---- */
  var cell = Math.max(10, Math.min(30, Math.floor(440 / T)));
  var font = Math.max(9, Math.min(12, cell - 1));
  var maxChars = Math.min(12, Math.max.apply(null, d.labels.map(function (s) { return s.length; })));
  var pad = Math.ceil(maxChars * font * 0.62) + 26;  // room for labels and index
  var size = cell * T;
  var svg = G2V.svg("svg", {width: pad + size + 4, height: pad + size + 4, "class": "g2v-heat",
    "data-role": "heatmap"});
  var defs = G2V.svg("defs", {});
  var pat = G2V.svg("pattern", {id: root.id + "-hatch", width: 6, height: 6,
    patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)"});
  pat.appendChild(G2V.svg("rect", {width: 6, height: 6, fill: G2V.MASKED}));
  pat.appendChild(G2V.svg("line", {x1: 0, y1: 0, x2: 0, y2: 6, stroke: "#cfcfcf", "stroke-width": 2}));
  defs.appendChild(pat); svg.appendChild(defs);
  var g = G2V.svg("g", {transform: "translate(" + pad + "," + pad + ")"});
  svg.appendChild(g);
  var mask = "M" + cell + ",0";
  for (var i = 0; i < T; i++) mask += " H" + size + " V" + (i + 1) * cell + " H" + (i + 2) * cell;
  g.appendChild(G2V.svg("path", {d: mask + " Z", fill: "url(#" + root.id + "-hatch)"}));
  var rects = [];
  for (i = 0; i < T; i++) {
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
    "stroke-width": 2, visibility: "hidden"});
  g.appendChild(focus);
  var cellInfo = G2V.el("div", {"class": "g2v-readout", "data-role": "cell",
    text: "Hover a cell for its weight; click a row to follow that token below."});
  var heatPanel = G2V.el("div", {"class": "g2v-panel"}, [
    G2V.el("div", {"class": "g2v-panel-title", "data-role": "heat-title"}), svg, cellInfo]);

  function cellAt(ev) {
    var box = svg.getBoundingClientRect();
    var j = Math.floor((ev.clientX - box.left - pad) / cell), i = Math.floor((ev.clientY - box.top - pad) / cell);
    return (i >= 0 && i < T && j >= 0 && j < T) ? [i, j] : null;
  }
  function markLabels(i, j) {
    rowLabels.forEach(function (t, k) { t.setAttribute("class", k === i ? "g2v-axis g2v-on" : "g2v-axis"); });
    colLabels.forEach(function (t, k) { t.setAttribute("class", k === j ? "g2v-axis g2v-on" : "g2v-axis"); });
  }
  svg.addEventListener("mousemove", function (ev) {
    var c = cellAt(ev);
    if (!c) return;
    var i = c[0], j = c[1];
    focus.setAttribute("x", j * cell); focus.setAttribute("y", i * cell);
    focus.setAttribute("visibility", "visible");
    markLabels(i, j);
    cellInfo.textContent = j > i
      ? lbl(i) + " (" + i + ") cannot see " + lbl(j) + " (" + j + "): it comes later (masked, weight 0)"
      : lbl(i) + " (" + i + ") \u2192 " + lbl(j) + " (" + j + "): weight " +
        G2V.fmt(weight(state.layer, state.head, i, j));
    setQuery(i, false);
  });
  svg.addEventListener("mouseleave", function () {
    focus.setAttribute("visibility", "hidden"); markLabels(-1, -1); setQuery(state.pinned, false);
  });
  svg.addEventListener("click", function (ev) { var c = cellAt(ev); if (c) setQuery(c[0], true); });

  /* ---- all heads as thumbnails ---- */
  var thumb = Math.max(18, Math.min(48, Math.floor(250 / H)));
  var dpr = window.devicePixelRatio || 1;
  var grid = G2V.el("div", {"class": "g2v-grid", "data-role": "grid",
    style: {gridTemplateColumns: "auto repeat(" + H + ", " + thumb + "px)"}});
  grid.appendChild(G2V.el("div", {}));
  for (var h = 0; h < H; h++) grid.appendChild(G2V.el("div", {"class": "g2v-grid-h", text: String(h)}));
  var thumbs = [];
  for (var l = 0; l < L; l++) {
    grid.appendChild(G2V.el("div", {"class": "g2v-grid-l", text: String(l)}));
    thumbs.push([]);
    for (h = 0; h < H; h++) {
      var cv = G2V.el("canvas", {width: thumb * dpr, height: thumb * dpr, "class": "g2v-thumb",
        title: "layer " + l + ", head " + h, "data-layer": l, "data-head": h,
        style: {width: thumb + "px", height: thumb + "px"}});
      cv.addEventListener("click", (function (l, h) { return function () { choose(l, h); }; })(l, h));
      grid.appendChild(cv); thumbs[l].push(cv);
    }
  }
  var gridPanel = G2V.el("div", {"class": "g2v-panel"}, [
    G2V.el("div", {"class": "g2v-panel-title", text: "All heads (rows: layers, columns: heads). Click one."}),
    grid]);
  app.appendChild(G2V.el("div", {"class": "g2v-row"}, [heatPanel, gridPanel]));

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
  var text = G2V.el("div", {"class": "g2v-text", "data-role": "tokens"});
  var toks = [];
  d.labels.forEach(function (s, i) {
    var span = G2V.el("span", {"class": "g2v-tok", "data-index": i});
    G2V.markWhitespace(span, s);
    span.addEventListener("mouseenter", function () { setQuery(i, false); });
    span.addEventListener("mouseleave", function () { setQuery(state.pinned, false); });
    span.addEventListener("click", function () { setQuery(i, true); });
    text.appendChild(span); toks.push(span);
    if (s.indexOf("\u21b5") >= 0) text.appendChild(G2V.el("br", {}));
  });
  var top = G2V.el("div", {"class": "g2v-readout", "data-role": "top"});
  app.appendChild(G2V.el("div", {"class": "g2v-panel g2v-wide"}, [
    G2V.el("div", {"class": "g2v-panel-title",
      text: "Where a token looks: hover a token, click to keep it. Darker = more attention."}),
    text, top]));
  var legend = G2V.legend();
  app.appendChild(legend);

  function setQuery(i, pin) {
    if (pin) state.pinned = i;
    state.query = i;
    root.setAttribute("data-query", i);
    var row = [];
    for (var j = 0; j < T; j++) {
      var span = toks[j];
      span.classList.toggle("g2v-query", j === i);
      span.classList.toggle("g2v-pinned", j === state.pinned);
      if (j > i) {
        span.style.backgroundColor = ""; span.style.color = ""; span.classList.add("g2v-future");
      } else {
        var t = shade(weight(state.layer, state.head, i, j));
        span.style.backgroundColor = G2V.blues(t); span.style.color = G2V.inkOn(t);
        span.classList.remove("g2v-future");
        span.title = lbl(i) + " \u2192 " + lbl(j) + ": " + G2V.fmt(weight(state.layer, state.head, i, j));
        row.push([weight(state.layer, state.head, i, j), j]);
      }
    }
    row.sort(function (a, b) { return b[0] - a[0] || a[1] - b[1]; });
    G2V.clear(top);
    top.appendChild(G2V.el("span", {"class": "g2v-strong", text: lbl(i) + " (" + i + ")"}));
    top.appendChild(document.createTextNode(" looks most at: "));
    row.slice(0, 5).forEach(function (p) {
      top.appendChild(G2V.el("span", {"class": "g2v-chip"}, [
        G2V.el("span", {"class": "g2v-mini", style: {width: Math.round(40 * p[0]) + "px"}}),
        lbl(p[1]) + " " + G2V.fmt(p[0], 2)]));
    });
  }

  function redraw() {
    var l = state.layer, h = state.head;
    for (var i = 0; i < T; i++) for (var j = 0; j <= i; j++) {
      var w = weight(l, h, i, j);
      rects[i][j].setAttribute("fill", G2V.blues(shade(w)));
    }
    for (var a = 0; a < L; a++) for (var b = 0; b < H; b++) {
      thumbs[a][b].classList.toggle("g2v-selected", a === l && b === h);
      drawThumb(thumbs[a][b], a, b);
    }
    title.textContent = "Attention \u00b7 layer " + l + " \u00b7 head " + h;
    heatPanel.firstChild.textContent = "Layer " + l + ", head " + h + ": " + T + " \u00d7 " + T + " weights";
    root.setAttribute("data-layer", l); root.setAttribute("data-head", h);
    setQuery(state.query, false);
  }
  function choose(l, h) {
    state.layer = l; state.head = h;
    layerSel[1].value = String(l); headSel[1].value = String(h);
    redraw();
  }
  redraw();
};

/* Colour bar 0..1 and the masked swatch. */
G2V.legend = function () {
  var bar = G2V.el("span", {"class": "g2v-bar", style: {background:
    "linear-gradient(to right," + G2V.BLUES.join(",") + ")"}});
  return G2V.el("div", {"class": "g2v-legend"}, [
    "weight 0 ", bar, " 1", G2V.el("span", {"class": "g2v-scale"}), G2V.el("span", {"class": "g2v-swatch", style: {background: G2V.MASKED}}),
    "masked (a later token)"]);
};
