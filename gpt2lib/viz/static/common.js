/* gpt2lib views: helpers shared by every view (no libraries, nothing fetched). */
var G2V = {};

G2V.BLUES = ["#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c", "#08306b"];
G2V.RDBU = ["#b2182b", "#d6604d", "#f4a582", "#fddbc7", "#f7f7f7", "#d1e5f0", "#92c5de", "#4393c3", "#2166ac"];
G2V.MASKED = "#e4e4e4";

G2V.hexToRgb = function (h) {
  return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
};

/* Piecewise-linear colour scale through the given stops; t in [0, 1]. */
G2V.rampRgb = function (stops, t) {
  t = Math.max(0, Math.min(1, t));
  var x = t * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  var a = G2V.hexToRgb(stops[i]), b = G2V.hexToRgb(stops[i + 1]);
  return [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * f); });
};
G2V.ramp = function (stops, t) { return "rgb(" + G2V.rampRgb(stops, t).join(",") + ")"; };
G2V.blues = function (t) { return G2V.ramp(G2V.BLUES, t); };
G2V.diverging = function (v) { return G2V.ramp(G2V.RDBU, (v + 1) / 2); };
/* Text on a cell: white on dark colours. */
G2V.inkOn = function (t) { return t > 0.55 ? "#fff" : "#1b1b1b"; };

G2V.el = function (tag, attrs, children) {
  var e = document.createElement(tag);
  G2V.setAttrs(e, attrs);
  (children || []).forEach(function (c) {
    e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
  });
  return e;
};
G2V.svg = function (tag, attrs) {
  var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  G2V.setAttrs(e, attrs);
  return e;
};
/* An SVG drawn at w x h where there is room and scaled down to its container where not. */
G2V.fit = function (svg, w, h) {
  G2V.setAttrs(svg, {width: w, height: h, viewBox: "0 0 " + w + " " + h});
  svg.classList.add("g2v-fit");
  return svg;
};
G2V.setAttrs = function (e, attrs) {
  for (var k in attrs || {}) {
    if (k === "text") e.textContent = attrs[k];
    else if (k === "style" && typeof attrs[k] === "object") Object.assign(e.style, attrs[k]);
    else e.setAttribute(k, attrs[k]);
  }
};
G2V.clear = function (e) { while (e.firstChild) e.removeChild(e.firstChild); };
G2V.fmt = function (x, d) { return (d === undefined ? x.toFixed(3) : x.toFixed(d)); };
/* An integer count of 1/scale units as a decimal with `digits` places, rounded half up
   in integers: (59510, 100000, 2) -> "0.60", where 0.5951.toFixed(2) after a division
   by 1000 of a stored 595 would give "0.59". */
G2V.fixedFromUnits = function (n, scale, digits) {
  var f = Math.pow(10, digits);
  return (Math.round(n * f / scale) / f).toFixed(digits);
};
G2V.pct = function (x) {
  if (x === 0) return "0%";
  if (x < 0.0001) return "<0.01%";
  return (100 * x).toFixed(x < 0.1 ? 2 : 1) + "%";
};
G2V.short = function (s, n) { return s.length > n ? s.slice(0, n - 1) + "…" : s; };
G2V.quote = function (s) { return "\u201c" + s + "\u201d"; };

/* Show whitespace marks (␣ ↵ ⇥) in a lighter colour inside a token. */
G2V.markWhitespace = function (parent, s) {
  var buf = "";
  function flush() { if (buf) { parent.appendChild(document.createTextNode(buf)); buf = ""; } }
  for (var k = 0; k < s.length; k++) {
    var ch = s[k];
    if ("\u2423\u21b5\u21e5\u240d\u237d".indexOf(ch) >= 0) {
      flush(); parent.appendChild(G2V.el("span", {"class": "g2v-ws", text: ch}));
    } else buf += ch;
  }
  flush();
};

/* A select box over 0..n-1 with a label. */
G2V.select = function (label, n, value, onChange, name) {
  var sel = G2V.el("select", {"class": "g2v-select", "aria-label": label, "data-role": name});
  for (var i = 0; i < n; i++) sel.appendChild(G2V.el("option", {value: i, text: String(i)}));
  sel.value = String(value);
  sel.addEventListener("change", function () { onChange(parseInt(sel.value, 10)); });
  return [G2V.el("label", {"class": "g2v-label"}, [label + " ", sel]), sel];
};

/* Replace the static first frame with the interactive view; run once per element. */
G2V.start = function (script, id, mount) {
  var root = (script && script.parentNode) || document.getElementById(id);
  if (!root || root.getAttribute("data-live") === "1") return;
  var dataTag = root.querySelector("script.g2v-data");
  var data = JSON.parse(dataTag.textContent);
  var fallback = root.querySelector(".g2v-fallback");
  var app = G2V.el("div", {"class": "g2v-app"});
  root.appendChild(app);
  try {
    mount(app, data);
    if (fallback) fallback.parentNode.removeChild(fallback);
    root.setAttribute("data-live", "1");
  } catch (err) {
    if (app.parentNode) app.parentNode.removeChild(app);
    root.appendChild(G2V.el("pre", {"class": "g2v-error", text: "gpt2lib view failed: " + err}));
  }
};
