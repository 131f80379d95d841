/* gpt2lib sampling view: the next-token distribution reshaped by temperature, top-k
   and top-p, with the same rules as gpt2lib.generate.next_token_probs. */

/* The distribution the next token is drawn from.
   logits: the page's top tokens, sorted descending. tailLse: log sum exp(l / t) over
   every other token at this temperature (null if there are none). topK, topP: null
   for off. Returns {probs: one per top token, other: mass of the other tokens,
   kept: top tokens kept, otherKept: whether any other token is kept, approx: whether
   "other" had to be estimated (the top-p set reaches past the page's tokens). */
G2V.nextTokenProbs = function (logits, tailLse, temperature, topK, topP) {
  var n = logits.length, probs = new Array(n).fill(0), i;
  if (temperature === 0) {  // greedy: everything on the most likely token
    probs[0] = 1;
    return {probs: probs, other: 0, kept: 1, otherKept: false, approx: false};
  }
  var s = logits.map(function (l) { return l / temperature; });  // 1. temperature
  var keep = s.map(function () { return true; }), withTail = tailLse !== null;
  if (topK !== null) {  // 2. top-k: keep the k largest, and any tie with the k-th
    var kth = s[Math.min(topK, n) - 1];
    for (i = 0; i < n; i++) keep[i] = s[i] >= kth;
    withTail = withTail && topK > n;
  }
  var z = 0, other = 0;
  for (i = 0; i < n; i++) if (keep[i]) { probs[i] = Math.exp(s[i] - s[0]); z += probs[i]; }
  if (withTail) { other = Math.exp(tailLse - s[0]); z += other; }
  for (i = 0; i < n; i++) probs[i] /= z;
  other /= z;
  var approx = false;
  if (topP !== null) {  // 3. top-p: the smallest most-likely set whose mass reaches p
    var before = 0;
    for (i = 0; i < n; i++) {
      if (!keep[i]) continue;
      if (before >= topP && i > 0) { keep[i] = false; } else { before += probs[i]; }
    }
    if (withTail) {
      if (before >= topP) { other = 0; withTail = false; }
      else { approx = other > topP - before; other = Math.min(other, topP - before); }
    }
    z = other;
    for (i = 0; i < n; i++) { if (!keep[i]) probs[i] = 0; z += probs[i]; }
    for (i = 0; i < n; i++) probs[i] /= z;
    other /= z;
  }
  var kept = keep.filter(function (k) { return k; }).length;
  return {probs: probs, other: other, kept: kept, otherKept: withTail && other > 0, approx: approx};
};

G2V.sampling = function (app, d) {
  var root = app.parentNode, n = d.logits.length, nb = Math.min(d.n_bars, n);
  var rest = d.n_vocab - n, t1 = d.temps.indexOf(1);
  var state = {t: t1, k: 0, p: 100};
  /* The title: the end of the prompt as it reads, line breaks kept (and marked \u21b5),
     then a slot for the token to come. */
  var promptBox = G2V.el("div", {"class": "g2v-prompt", "data-role": "prompt"});
  d.prompt.split("\n").forEach(function (line, k, lines) {
    promptBox.appendChild(document.createTextNode(line));
    if (k < lines.length - 1) {
      promptBox.appendChild(G2V.el("span", {"class": "g2v-ws", text: "\u21b5"}));
      promptBox.appendChild(G2V.el("br", {}));
    }
  });
  promptBox.appendChild(G2V.el("span", {"class": "g2v-slot", "data-role": "slot", text: "?"}));
  app.appendChild(G2V.el("div", {"class": "g2v-header"}, [G2V.el("div", {"class": "g2v-title",
    text: "Next token after the prompt (" + d.n_prompt + " tokens):"})]));
  app.appendChild(promptBox);

  function slider(label, min, max, value, role, onInput) {
    var input = G2V.el("input", {type: "range", min: min, max: max, step: 1, value: value, "data-role": role,
      "aria-label": label});
    var out = G2V.el("span", {"class": "g2v-value"});
    input.addEventListener("input", function () { onInput(+input.value); update(); });
    return [G2V.el("label", {"class": "g2v-slider"}, [label, input, out]), out];
  }
  var ts = slider("temperature", 0, d.temps.length - 1, t1, "temperature", function (v) { state.t = v; });
  var ks = slider("top-k", 0, n, 0, "top-k", function (v) { state.k = v; });
  var ps = slider("top-p", 1, 100, 100, "top-p", function (v) { state.p = v; });
  var drawButton = G2V.el("button", {type: "button", "class": "g2v-button", "data-role": "draw",
    text: "Draw 10 tokens"});
  drawButton.addEventListener("click", function () { draw(10); });
  app.appendChild(G2V.el("div", {"class": "g2v-controls", style: {margin: "4px 0 8px"}}, [ts[0], ks[0], ps[0], drawButton]));
  var draws = G2V.el("div", {"class": "g2v-readout g2v-draws", "data-role": "draws", "aria-live": "polite",
    text: "Draw: sample next tokens with these settings, as generate does (each draw is one next token, from the same prompt)."});
  app.appendChild(draws);
  var bars = G2V.el("div", {"class": "g2v-bars", "data-role": "bars"});
  app.appendChild(bars);
  var summary = G2V.el("div", {"class": "g2v-readout", "data-role": "summary", style: {maxWidth: "640px"}});
  app.appendChild(summary);
  app.appendChild(G2V.el("div", {"class": "g2v-note", style: {marginTop: "6px"}, text:
    "Dashed outline: the model's own distribution (temperature 1, no filter); blue: after the controls. " +
    "The page holds the " + n + " most likely tokens exactly; the other " + rest.toLocaleString("en-US") +
    " tokens are folded into \u201cother\u201d, whose total mass is exact at every temperature. Filters are applied " +
    "in gpt2lib's order: temperature, then top-k, then top-p. If the top-p set reaches into \u201cother\u201d, " +
    "its share is an estimate (marked \u2248)."}));

  var base = G2V.nextTokenProbs(d.logits, d.tail_lse[t1], 1, null, null);
  var rows = [];
  function addRow(label, title) {
    var name = G2V.el("div", {"class": "g2v-tokname", text: label, title: title || ""});
    var ghost = G2V.el("div", {"class": "g2v-ghost"}), fill = G2V.el("div", {"class": "g2v-fill"});
    var num = G2V.el("div", {"class": "g2v-num"});
    bars.appendChild(name); bars.appendChild(G2V.el("div", {"class": "g2v-track"}, [ghost, fill]));
    bars.appendChild(num);
    return {name: name, ghost: ghost, fill: fill, num: num};
  }
  for (var i = 0; i < nb; i++) rows.push(addRow(d.labels[i], "id " + d.ids[i] + ", rank " + (i + 1)));
  var otherRow = rest > 0 ? addRow("other (" + rest.toLocaleString("en-US") + ")", "every token not in the top " + n) : null;

  function update() {
    var T = d.temps[state.t], k = state.k === 0 ? null : state.k, p = state.p === 100 ? null : state.p / 100;
    ts[1].textContent = T === 0 ? "0 (greedy)" : T.toFixed(2);
    ks[1].textContent = k === null ? "off" : String(k);
    ps[1].textContent = p === null ? "off" : p.toFixed(2);
    var r = G2V.nextTokenProbs(d.logits, d.tail_lse[state.t], T, k, p);
    var scale = Math.max(base.probs[0], r.probs[0], 1e-9);
    rows.forEach(function (row, i) {
      row.ghost.style.width = (100 * base.probs[i] / scale).toFixed(2) + "%";
      row.fill.style.width = (100 * r.probs[i] / scale).toFixed(2) + "%";
      row.num.textContent = G2V.pct(r.probs[i]);
      row.name.classList.toggle("g2v-dropped", r.probs[i] === 0);
      row.num.classList.toggle("g2v-dropped", r.probs[i] === 0);
      row.num.setAttribute("data-p", r.probs[i].toPrecision(6));
    });
    if (otherRow) {
      otherRow.ghost.style.width = Math.min(100, 100 * base.other / scale).toFixed(2) + "%";
      otherRow.fill.style.width = Math.min(100, 100 * r.other / scale).toFixed(2) + "%";
      otherRow.num.textContent = (r.approx ? "\u2248" : "") + G2V.pct(r.other);
      otherRow.num.classList.toggle("g2v-dropped", r.other === 0);
    }
    var keptText = r.otherKept ? r.kept + " of the top " + n + " + " + (r.approx ? "some of " : "all ") +
      "the other " + rest.toLocaleString("en-US") : r.kept + " of " + d.n_vocab.toLocaleString("en-US");
    summary.textContent = "Tokens that can be drawn: " + keptText + ". Most likely: " + d.labels[0] + " " +
      G2V.pct(r.probs[0]) + " (was " + G2V.pct(base.probs[0]) + ").";
    root.setAttribute("data-settings", [T, k, p].join(","));
    current = r;
    if (drawn && drawn.getAttribute("data-settings") !== root.getAttribute("data-settings")) {
      drawn.classList.add("g2v-stale"); promptBox.lastChild.textContent = "?";
    } else if (drawn) drawn.classList.remove("g2v-stale");
  }
  var current = null, drawn = null;

  /* n next tokens drawn from the distribution the bars show ("other" stands for any
     token not on the page; which one is unknown here). The k-th click uses seed k, so a
     page reloaded and clicked the same way draws the same tokens. */
  var clicks = 0;
  function draw(n) {
    var picks = [], u = G2V.rng(++clicks);
    for (var k = 0; k < n; k++) picks.push(G2V.sample(current, u()));
    var T = d.temps[state.t];
    G2V.clear(draws);
    drawn = G2V.el("div", {"data-settings": root.getAttribute("data-settings")});
    drawn.appendChild(G2V.el("span", {text: n + " draws (seed " + clicks + ") at temperature " +
      (T === 0 ? "0 (greedy)" : T.toFixed(2)) + ", top-k " + ks[1].textContent + ", top-p " + ps[1].textContent + ": "}));
    picks.forEach(function (i) {
      var chip = G2V.el("span", {"class": "g2v-drawn" + (i < 0 ? " g2v-other" : ""), "data-index": i});
      G2V.markWhitespace(chip, i < 0 ? "(other)" : d.labels[i]);
      chip.title = i < 0 ? "a token outside the page's top " + d.logits.length : "id " + d.ids[i] + ", rank " + (i + 1);
      drawn.appendChild(chip);
    });
    draws.appendChild(drawn);
    G2V.clear(promptBox.lastChild);
    G2V.markWhitespace(promptBox.lastChild, picks[0] < 0 ? "(other)" : d.labels[picks[0]]);
    root.setAttribute("data-draws", picks.join(","));
    root.setAttribute("data-seed", String(clicks));
  }
  update();
};

/* The index of the top token a uniform u in [0, 1) falls on, or -1 for "other";
   r: what nextTokenProbs returns. Tokens with probability 0 are never drawn. */
G2V.sample = function (r, u) {
  var acc = 0, last = -1;
  for (var i = 0; i < r.probs.length; i++) {
    if (r.probs[i] <= 0) continue;
    acc += r.probs[i]; last = i;
    if (u < acc) return i;
  }
  return r.other > 0 ? -1 : last;  // u beyond the top tokens' mass (or rounding): "other"
};

/* A seeded generator of uniform numbers in [0, 1) (mulberry32): the same seed gives the
   same sequence in every browser. */
G2V.rng = function (seed) {
  var a = seed >>> 0;
  return function () {
    a = (a + 0x6D2B79F5) >>> 0;
    var t = Math.imul(a ^ (a >>> 15), a | 1);
    t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
};
