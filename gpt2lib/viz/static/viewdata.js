/* gpt2lib in the browser: the data of the attention, token and sampling views for a new
   text, in the same JSON shape as gpt2lib/viz/views.py writes into the page, so the
   views' own code (attention.js, tokens.js, sampling.js) draws it unchanged.

   Ports of views.attention_view + heads.head_scores/choose_head/summary_lists,
   views.token_view and views.sampling_view + data.sampling_data. Numbers are rounded as
   the Python side rounds them; sums are in double precision.
   Uses G2VWeb.Tokenizer (bpe.js) and G2VWeb.GPT2 (engine.js). Shapes: L layers, nh heads, T tokens. */
(function (root) {
  "use strict";
  var G2VWeb = root.G2VWeb = root.G2VWeb || {};
  var WEIGHT_SCALE = 100000;  // views.WEIGHT_SCALE
  var THRESHOLDS = {previous: 0.4, induction: 0.3, sink: 0.5};  // heads.THRESHOLDS

  function round(x, digits) { var f = Math.pow(10, digits); return Math.round(x * f) / f; }
  function codePoints(s) { return Array.from(s); }

  /* heads.head_scores: per head [L][nh] means over the query tokens that allow them.
     att: L x Float32Array [nh, T, T]. */
  function headScores(att, ids, nh) {
    var L = att.length, T = ids.length;
    function table(f) {
      var out = [];
      for (var l = 0; l < L; l++) { out.push([]); for (var h = 0; h < nh; h++) out[l].push(f(att[l], h)); }
      return out;
    }
    function w(a, h, i, j) { return a[(h * T + i) * T + j]; }
    if (T < 2) {
      var zeros = table(function () { return 0; });
      return {previous: zeros, sink: zeros, focus: zeros, induction: null};
    }
    var previous = table(function (a, h) { var s = 0; for (var i = 1; i < T; i++) s += w(a, h, i, i - 1); return s / (T - 1); });
    var sink = table(function (a, h) { var s = 0; for (var i = 1; i < T; i++) s += w(a, h, i, 0); return s / (T - 1); });
    var focus = table(function (a, h) {
      var s = 0;
      for (var i = 1; i < T; i++) { var m = 0; for (var j = 1; j < T; j++) m = Math.max(m, w(a, h, i, j)); s += m; }
      return s / (T - 1);
    });
    var targets = [];  // heads.induction_targets: [query i, keys right after earlier copies]
    ids.forEach(function (token, i) {
      var after = [];
      for (var p = 0; p < i; p++) if (ids[p] === token) after.push(p + 1);
      if (after.length) targets.push([i, after]);
    });
    var induction = !targets.length ? null : table(function (a, h) {
      var s = 0;
      targets.forEach(function (t) { t[1].forEach(function (j) { s += w(a, h, t[0], j); }); });
      return s / targets.length;
    });
    return {previous: previous, sink: sink, focus: focus, induction: induction};
  }

  /* heads.best: [layer, head, score] of the highest score (the first such head in row order). */
  function best(values) {
    var out = [0, 0, -Infinity];
    values.forEach(function (row, l) { row.forEach(function (v, h) { if (v > out[2]) out = [l, h, v]; }); });
    return out;
  }

  /* heads.choose_head with no layer or head given: induction >= 0.3, else previous >= 0.4,
     else the most focused head. */
  function chooseHead(s) {
    var candidates = [];
    if (s.induction) candidates.push([s.induction, THRESHOLDS.induction, "the strongest induction head"]);
    candidates.push([s.previous, THRESHOLDS.previous, "the strongest previous-token head"]);
    for (var k = 0; k < candidates.length; k++) {
      var b = best(candidates[k][0]);
      if (b[2] >= candidates[k][1]) return {layer: b[0], head: b[1], reason: candidates[k][2] + " (" + b[2].toFixed(2) + ")"};
    }
    var f = best(s.focus);
    return {layer: f[0], head: f[1], reason: "the most focused head (its largest weight off the first token averages " + f[2].toFixed(2) + ")"};
  }

  /* heads.summary_lists: each kind's heads at or above its threshold, best first. */
  function summaryLists(s, n) {
    n = n || 4;
    var kinds = {previous: s.previous, sink: s.sink, focus: s.focus}, out = {};
    if (s.induction) kinds.induction = s.induction;
    Object.keys(kinds).forEach(function (kind) {
      var values = kinds[kind], flat = [];
      values.forEach(function (row, l) { row.forEach(function (v, h) { flat.push([l, h, v, flat.length]); }); });
      flat.sort(function (a, b) { return b[2] - a[2] || a[3] - b[3]; });  // descending, stable
      var ranked = flat.map(function (e) { return [e[0], e[1], round(e[2], 2)]; });
      var listed = kind in THRESHOLDS
        ? ranked.filter(function (r) { return r[2] >= THRESHOLDS[kind]; }).slice(0, n) : ranked.slice(0, 3);
      out[kind] = {heads: listed, best: ranked[0]};
    });
    return out;
  }

  function checkIds(ids, what) {
    if (!ids.length) throw new Error("the " + what + " encodes to no tokens; give at least one character");
    return ids;
  }

  /* views.attention_view(model, tokenizer, text, max_tokens) with the head chosen for the text. */
  function attentionData(model, tok, text, maxTokens) {
    var ids = checkIds(tok.encode(text), "text"), cfg = model.config;
    var shown = ids.slice(0, Math.min(maxTokens || 48, cfg.n_ctx)), T = shown.length, nh = cfg.n_head;
    var att = model.forward(shown, {logits: "none"}).attentions;
    var scores = headScores(att, shown, nh), choice = chooseHead(scores);
    var w = att.map(function (a) {  // [L, nh, T(T+1)/2]: the entries j <= i, row by row
      var heads = [];
      for (var h = 0; h < nh; h++) {
        var tri = [];
        for (var i = 0; i < T; i++) for (var j = 0; j <= i; j++) tri.push(Math.round(a[(h * T + i) * T + j] * WEIGHT_SCALE));
        heads.push(tri);
      }
      return heads;
    });
    return {labels: shown.map(tok.tokenLabel, tok), n_layer: cfg.n_layer, n_head: nh, T: T, total: ids.length,
      w: w, scale: WEIGHT_SCALE, start: [choice.layer, choice.head], reason: choice.reason,
      heads: summaryLists(scores)};
  }

  function hex(bytes) {
    return Array.from(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join(" ");
  }

  /* views.token_view(tokenizer, text): <|endoftext|> is encoded as its id. */
  function tokenData(tok, text) {
    var ids = text ? tok.encode(text, "all") : [];
    var pieces = ids.map(tok.tokenBytes, tok);
    return {ids: ids,
      texts: pieces.map(function (p) { return G2VWeb.decodeUtf8(p, "replace"); }),
      labels: pieces.map(function (p) { return G2VWeb.visible(G2VWeb.decodeUtf8(p, "backslashreplace")); }),
      bytes: pieces.map(hex), n_chars: codePoints(text).length, n_bytes: new TextEncoder().encode(text).length};
  }

  /* views.prompt_tail: the last maxChars characters, from a word or line boundary. */
  function promptTail(text, maxChars) {
    var chars = codePoints(text);
    maxChars = maxChars || 80;
    if (chars.length <= maxChars) return text;
    var tail = chars.slice(-maxChars), found = [tail.indexOf(" "), tail.indexOf("\n")].filter(function (k) { return k >= 0; });
    var cut = found.length ? Math.min.apply(null, found) : -1;
    return "\u2026" + (cut >= 0 && cut < tail.length - 1 ? tail.slice(cut) : tail).join("");
  }

  /* views.sampling_view(model, tokenizer, prompt, n_top, n_bars) on the temperature grid temps. */
  function samplingData(model, tok, prompt, nTop, nBars, temps) {
    var cfg = model.config, ids = checkIds(tok.encode(prompt), "prompt").slice(-cfg.n_ctx);
    var logits = model.forward(ids, {logits: "last"}).logits, V = logits.length;
    var order = new Array(V);
    for (var v = 0; v < V; v++) order[v] = v;
    order.sort(function (a, b) { return logits[b] - logits[a] || a - b; });  // [V], most likely first
    nTop = Math.min(nTop, V);
    var tail = order.slice(nTop).map(function (i) { return logits[i]; });  // [V - n_top], descending
    var tailLse = temps.map(function (t) {
      if (!tail.length) return null;
      t = Math.max(t, 1e-6);  // t = 0 (greedy) is never used
      var m = tail[0] / t, s = 0;
      for (var k = 0; k < tail.length; k++) s += Math.exp(tail[k] / t - m);
      var lse = m + Math.log(s);
      return isFinite(lse) ? round(lse, 4) : null;
    });
    var top = order.slice(0, nTop);
    return {ids: top, labels: top.map(tok.tokenLabel, tok), logits: top.map(function (i) { return round(logits[i], 4); }),
      temps: temps.slice(), tail_lse: tailLse, n_vocab: V, n_bars: nBars,
      prompt: promptTail(tok.decode(ids)), n_prompt: ids.length};
  }

  G2VWeb.headScores = headScores;
  G2VWeb.chooseHead = chooseHead;
  G2VWeb.attentionData = attentionData;
  G2VWeb.tokenData = tokenData;
  G2VWeb.samplingData = samplingData;
  G2VWeb.promptTail = promptTail;
})(typeof globalThis !== "undefined" ? globalThis : this);
