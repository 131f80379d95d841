/* gpt2lib embedding view: cosine similarities, a 2-D PCA projection, nearest
   neighbours in wte, and what the position embedding wpe does to a token. */
G2V.embedding = function (app, d) {
  var root = app.parentNode, N = d.labels.length, state = {sel: 0};
  var chips = G2V.el("div", {"class": "g2v-controls", "data-role": "words"});
  app.appendChild(G2V.el("div", {"class": "g2v-header"}, [
    G2V.el("div", {"class": "g2v-title", text: "Token embeddings \u00b7 " + N + " tokens \u00b7 " + d.n_embd + " dimensions"}),
    chips]));
  app.appendChild(G2V.el("div", {"class": "g2v-note",
    text: "Click a token (a button, a row of the matrix or a point) to see its neighbours and positions."}));
  var buttons = d.labels.map(function (s, i) {
    var b = G2V.el("button", {"class": "g2v-chipbtn", type: "button", text: s, "data-index": i});
    b.addEventListener("click", function () { select(i); });
    chips.appendChild(b);
    return b;
  });
  var readout = G2V.el("div", {"class": "g2v-readout", "data-role": "readout", text: "\u00a0"});

  /* ---- cosine similarity matrix ---- */
  var cell = Math.max(24, Math.min(40, Math.floor(300 / N)));
  var numFont = Math.min(10, Math.floor((cell - 4) / (4 * 0.62)));  // "\u2212.18" fits the cell
  var maxChars = Math.min(12, Math.max.apply(null, d.labels.map(function (s) { return s.length; })));
  var pad = Math.ceil(maxChars * 7.2) + 10, size = cell * N;
  var sim = G2V.fit(G2V.svg("svg", {"data-role": "similarity"}), pad + size + 2, pad + size + 2);
  var g = G2V.svg("g", {transform: "translate(" + pad + "," + pad + ")"});
  sim.appendChild(g);
  var rowText = [], colText = [];
  for (var i = 0; i < N; i++) {
    var rt = G2V.svg("text", {x: -5, y: i * cell + cell / 2, "text-anchor": "end", "dominant-baseline": "central",
      "font-size": 12, "class": "g2v-axis"});
    rt.textContent = G2V.short(d.labels[i], 12); g.appendChild(rt); rowText.push(rt);
    var ct = G2V.svg("text", {"text-anchor": "start", "dominant-baseline": "central", "font-size": 12,
      transform: "translate(" + (i * cell + cell / 2) + ",-5) rotate(-90)"});
    ct.textContent = G2V.short(d.labels[i], 12); g.appendChild(ct); colText.push(ct);
    for (var j = 0; j < N; j++) {
      var v = d.sim[i][j];
      var r = G2V.svg("rect", {x: j * cell, y: i * cell, width: cell - 1, height: cell - 1,
        fill: G2V.diverging(v), "data-i": i, "data-j": j});
      g.appendChild(r);
      if (numFont >= 8) {
        var vt = G2V.svg("text", {x: j * cell + cell / 2, y: i * cell + cell / 2, "text-anchor": "middle",
          "dominant-baseline": "central", "font-size": numFont, "pointer-events": "none",
          style: "fill:" + (Math.abs(v) > 0.6 ? "#fff" : "#1b1b1b")});
        vt.textContent = G2V.cosText(v); g.appendChild(vt);
      }
    }
  }
  /* The selected token's row and column, outlined. */
  var selRow = G2V.svg("rect", {x: -0.5, height: cell, width: size, "class": "g2v-sel-outline", "data-role": "selected-row"});
  var selCol = G2V.svg("rect", {y: -0.5, width: cell, height: size, "class": "g2v-sel-outline", "data-role": "selected-column"});
  g.appendChild(selRow); g.appendChild(selCol);
  sim.addEventListener("mousemove", function (ev) {
    var t = ev.target;
    if (t.getAttribute && t.getAttribute("data-i") !== null) {
      var a = +t.getAttribute("data-i"), b = +t.getAttribute("data-j");
      readout.textContent = "cos(" + d.labels[a] + ", " + d.labels[b] + ") = " + d.sim[a][b].toFixed(3);
    }
  });
  sim.addEventListener("click", function (ev) {
    var a = ev.target.getAttribute && ev.target.getAttribute("data-i");
    if (a !== null && a !== undefined) select(+a);
  });
  var simPanel = G2V.el("div", {"class": "g2v-panel"}, [
    G2V.el("div", {"class": "g2v-panel-title", text: "Cosine similarity of the wte rows"}), sim,
    G2V.el("div", {"class": "g2v-legend"}, ["\u22121 ", G2V.el("span", {"class": "g2v-bar", style: {
      background: "linear-gradient(to right," + G2V.RDBU.join(",") + ")"}}), " +1 \u00b7 .74 means 0.74; hover a cell for more"])]);

  /* ---- 2-D projection ---- */
  var W = 330, Hh = 290, m = 34;
  var xs = d.xy.map(function (p) { return p[0]; }), ys = d.xy.map(function (p) { return p[1]; });
  function extent(a) {
    var lo = Math.min.apply(null, a), hi = Math.max.apply(null, a), span = (hi - lo) || 1;
    return [lo - 0.12 * span, hi + 0.12 * span];
  }
  var ex = extent(xs), ey = extent(ys);
  function X(v) { return m + (v - ex[0]) / (ex[1] - ex[0]) * (W - 2 * m); }
  function Y(v) { return Hh - m - (v - ey[0]) / (ey[1] - ey[0]) * (Hh - 2 * m); }
  var pca = G2V.fit(G2V.svg("svg", {"data-role": "pca"}), W, Hh);
  pca.appendChild(G2V.svg("rect", {x: m, y: m / 2, width: W - 2 * m, height: Hh - 1.5 * m, fill: "#fafafa",
    stroke: "#ddd"}));
  if (ex[0] < 0 && ex[1] > 0) pca.appendChild(G2V.svg("line", {x1: X(0), x2: X(0), y1: m / 2, y2: Hh - m, stroke: "#e2e2e2"}));
  if (ey[0] < 0 && ey[1] > 0) pca.appendChild(G2V.svg("line", {x1: m, x2: W - m, y1: Y(0), y2: Y(0), stroke: "#e2e2e2"}));
  var ax = G2V.svg("text", {x: W / 2, y: Hh - 10, "text-anchor": "middle", "font-size": 11, "class": "g2v-title-text"});
  ax.textContent = "PC 1 (" + (100 * d.explained[0]).toFixed(0) + "% of the variance)";
  var ay = G2V.svg("text", {"text-anchor": "middle", "font-size": 11, "class": "g2v-title-text",
    transform: "translate(14," + (Hh / 2 - m / 4) + ") rotate(-90)"});
  ay.textContent = "PC 2 (" + (100 * d.explained[1]).toFixed(0) + "%)";
  pca.appendChild(ax); pca.appendChild(ay);
  var pts = d.xy.map(function (p) { return [X(p[0]), Y(p[1])]; });
  var places = G2V.placeLabels(pts, d.labels.map(function (s) { return s.length * 7.3 + 2; }), 14,
    [m + 2, m / 2 + 2, W - m - 2, Hh - m - 2]);
  var labelLayer = G2V.svg("g", {"data-role": "pca-labels"});
  var dots = d.xy.map(function (p, i) {
    var c = G2V.svg("circle", {cx: pts[i][0], cy: pts[i][1], r: 5, fill: "#2171b5", stroke: "#fff",
      "stroke-width": 1.5, "data-index": i, style: "cursor:pointer"});
    var box = places[i];
    if (box.leader) labelLayer.appendChild(G2V.svg("line", {x1: pts[i][0], y1: pts[i][1],
      x2: Math.max(box.x, Math.min(box.x + box.w, pts[i][0])), y2: Math.max(box.y, Math.min(box.y + box.h, pts[i][1])),
      stroke: "#999", "stroke-width": 1}));
    var t = G2V.svg("text", {x: box.x + 1, y: box.y + box.h / 2, "dominant-baseline": "central", "font-size": 12,
      "pointer-events": "none", "data-index": i});
    t.textContent = d.labels[i];
    labelLayer.appendChild(t);
    c.addEventListener("mouseenter", function () {
      readout.textContent = d.labels[i] + ": PC 1 = " + p[0].toFixed(3) + ", PC 2 = " + p[1].toFixed(3);
    });
    c.addEventListener("click", function () { select(i); });
    pca.appendChild(c);
    return c;
  });
  pca.appendChild(labelLayer);
  var pcaPanel = G2V.el("div", {"class": "g2v-panel"}, [
    G2V.el("div", {"class": "g2v-panel-title", text: "The same rows projected to 2-D (PCA)"}), pca]);
  app.appendChild(G2V.el("div", {"class": "g2v-row"}, [simPanel, pcaPanel]));
  app.appendChild(readout);

  /* ---- nearest neighbours ---- */
  var nbTitle = G2V.el("div", {"class": "g2v-panel-title"});
  var nbList = G2V.el("div", {"class": "g2v-bars", "data-role": "neighbours",
    style: {gridTemplateColumns: "minmax(70px, max-content) 150px 44px"}});
  var nbPanel = G2V.el("div", {"class": "g2v-panel"}, [nbTitle, nbList]);

  /* ---- positions ---- */
  var PW = 380, PH = 230, pm = {l: 40, r: 10, t: 10, b: 34};
  var posTitle = G2V.el("div", {"class": "g2v-panel-title"});
  var pos = G2V.fit(G2V.svg("svg", {"data-role": "positions"}), PW, PH);
  var posInfo = G2V.el("div", {"class": "g2v-readout", "data-role": "position-info", style: {maxWidth: PW + "px"}});
  var posPanel = G2V.el("div", {"class": "g2v-panel"}, [posTitle, pos,
    G2V.el("div", {"class": "g2v-legend"}, [
      G2V.el("span", {"class": "g2v-swatch", style: {background: "#2171b5", marginLeft: "0"}}),
      " vs the token alone: cos(wte + wpe[p], wte)",
      G2V.el("span", {"class": "g2v-swatch", style: {background: "#e6550d"}}),
      " vs position 0"]), posInfo]);
  app.appendChild(G2V.el("div", {"class": "g2v-row"}, [nbPanel, posPanel]));

  var P = d.positions, maxPos = P[P.length - 1] || 1;
  function PX(p) { return pm.l + p / maxPos * (PW - pm.l - pm.r); }
  function drawPositions(i) {
    G2V.clear(pos);
    var all = d.vs_token[i].concat(d.vs_first[i]);
    var lo = Math.min(0, Math.floor(Math.min.apply(null, all) * 4) / 4), step = (1 - lo) > 1 ? 0.5 : 0.25;
    function PY(v) { return pm.t + (1 - v) / (1 - lo) * (PH - pm.t - pm.b); }
    for (var k = 1; k >= lo - 1e-9; k -= step) {
      pos.appendChild(G2V.svg("line", {x1: pm.l, x2: PW - pm.r, y1: PY(k), y2: PY(k), stroke: "#eee"}));
      var yt = G2V.svg("text", {x: pm.l - 4, y: PY(k), "text-anchor": "end", "dominant-baseline": "central", "font-size": 10});
      yt.textContent = k.toFixed(2); pos.appendChild(yt);
    }
    [0, Math.round(maxPos / 2), maxPos].forEach(function (p) {
      var xt = G2V.svg("text", {x: PX(p), y: PH - pm.b + 14, "text-anchor": "middle", "font-size": 10});
      xt.textContent = String(p); pos.appendChild(xt);
    });
    var xl = G2V.svg("text", {x: (PW + pm.l) / 2, y: PH - 4, "text-anchor": "middle", "font-size": 11, "class": "g2v-title-text"});
    xl.textContent = "position p"; pos.appendChild(xl);
    [[d.vs_token[i], "#2171b5"], [d.vs_first[i], "#e6550d"]].forEach(function (s) {
      var pts = P.map(function (p, k) { return PX(p).toFixed(1) + "," + PY(s[0][k]).toFixed(1); });
      pos.appendChild(G2V.svg("polyline", {points: pts.join(" "), fill: "none", stroke: s[1], "stroke-width": 2}));
    });
    var cursor = G2V.svg("line", {y1: pm.t, y2: PH - pm.b, stroke: "#999", "stroke-dasharray": "3,3", visibility: "hidden"});
    pos.appendChild(cursor);
    pos.onmousemove = function (ev) {
      var box = pos.getBoundingClientRect(), x = (ev.clientX - box.left) * PW / box.width, best = 0;
      P.forEach(function (p, k) { if (Math.abs(PX(p) - x) < Math.abs(PX(P[best]) - x)) best = k; });
      cursor.setAttribute("x1", PX(P[best])); cursor.setAttribute("x2", PX(P[best]));
      cursor.setAttribute("visibility", "visible");
      posInfo.textContent = d.labels[i] + " at position " + P[best] + ": cos with the token alone " +
        d.vs_token[i][best].toFixed(3) + ", with position 0 " + d.vs_first[i][best].toFixed(3) +
        "; |wpe[" + P[best] + "]| = " + d.position_norm[best].toFixed(2) + " vs |wte| = " + d.token_norm[i].toFixed(2);
    };
    posInfo.textContent = "Hover the chart. |wte| for " + d.labels[i] + " = " + d.token_norm[i].toFixed(2) +
      "; the position vectors have |wpe[p]| from " + Math.min.apply(null, d.position_norm).toFixed(2) +
      " to " + Math.max.apply(null, d.position_norm).toFixed(2) + ".";
  }

  function select(i) {
    state.sel = i;
    root.setAttribute("data-selected", i);
    buttons.forEach(function (b, k) { b.classList.toggle("g2v-selected", k === i); });
    rowText.forEach(function (t, k) { t.setAttribute("class", k === i ? "g2v-axis g2v-on" : "g2v-axis"); });
    colText.forEach(function (t, k) { t.setAttribute("class", k === i ? "g2v-axis g2v-on" : "g2v-axis"); });
    selRow.setAttribute("y", i * cell - 0.5); selCol.setAttribute("x", i * cell - 0.5);
    dots.forEach(function (c, k) { c.setAttribute("fill", k === i ? "#e6550d" : "#2171b5"); c.setAttribute("r", k === i ? 7 : 5); });
    var nb = d.nb[i];
    nbTitle.textContent = "Nearest to " + d.labels[i] + " among all " + d.n_vocab.toLocaleString("en-US") + " tokens";
    G2V.clear(nbList);
    nb.labels.forEach(function (s, k) {
      var track = G2V.el("div", {"class": "g2v-track"}, [G2V.el("div", {"class": "g2v-fill",
        style: {width: Math.max(0, 100 * nb.scores[k]) + "%", background: k === 0 ? "#e6550d" : "#2171b5"}})]);
      nbList.appendChild(G2V.el("div", {"class": "g2v-tokname", text: s, title: "id " + nb.ids[k]}));
      nbList.appendChild(track);
      nbList.appendChild(G2V.el("div", {"class": "g2v-num", text: nb.scores[k].toFixed(3)}));
    });
    posTitle.textContent = d.labels[i] + " at different positions: wte + wpe[p]";
    drawPositions(i);
  }
  select(0);
};

/* A cosine similarity in 4 characters, so neighbouring cells never run together:
   0.74 -> ".74", -0.18 -> "\u2212.18", 1 -> "1", -0.001 -> ".00". */
G2V.cosText = function (v) {
  var r = Math.round(Math.abs(v) * 100);
  if (r >= 100) return (v < 0 ? "\u2212" : "") + "1";
  return (v < 0 && r > 0 ? "\u2212" : "") + "." + (r < 10 ? "0" : "") + r;
};

/* Place one label box (w[i] x h) near each point so that no two boxes overlap and no
   box covers a point, inside bounds [x0, y0, x1, y1]. Greedy: each label takes the
   first free spot on rings of growing radius around its point (right, left, above,
   below, then the diagonals); one placed off the first ring gets a leader line.
   Returns [{x, y, w, h, leader}] (top-left corners). */
G2V.placeLabels = function (points, w, h, bounds) {
  var placed = [], R = 5;
  function hits(a, b) { return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h; }
  function free(box) {
    if (box.x < bounds[0] || box.y < bounds[1] || box.x + box.w > bounds[2] || box.y + box.h > bounds[3]) return false;
    for (var k = 0; k < points.length; k++) {
      var dot = {x: points[k][0] - R, y: points[k][1] - R, w: 2 * R, h: 2 * R};
      if (hits(box, dot)) return false;
    }
    return !placed.some(function (p) { return hits(box, p); });
  }
  return points.map(function (pt, i) {
    var best = null;
    for (var ring = 0; ring < 12 && !best; ring++) {
      var r = 8 + 9 * ring;
      var spots = [[r, -h / 2], [-r - w[i], -h / 2], [-w[i] / 2, -r - h], [-w[i] / 2, r],
        [r * 0.7, -r * 0.7 - h], [r * 0.7, r * 0.7], [-r * 0.7 - w[i], -r * 0.7 - h], [-r * 0.7 - w[i], r * 0.7]];
      for (var s = 0; s < spots.length && !best; s++) {
        var box = {x: pt[0] + spots[s][0], y: pt[1] + spots[s][1], w: w[i], h: h, leader: ring > 0};
        if (free(box)) best = box;
      }
    }
    if (!best) best = {x: pt[0] + 8, y: pt[1] - h / 2, w: w[i], h: h, leader: false};  // no room anywhere: overlap
    placed.push(best);
    return best;
  });
};
