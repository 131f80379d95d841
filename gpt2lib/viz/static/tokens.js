/* gpt2lib token view: a text with each token on its own colour; hover for id and bytes. */
G2V.TOKEN_COLOURS = ["#fde68a", "#bbf7d0", "#bfdbfe", "#fecaca", "#ddd6fe", "#a5f3fc", "#fbcfe8"];

G2V.tokens = function (app, d) {
  var root = app.parentNode, n = d.ids.length;
  var idsBox = G2V.el("input", {type: "checkbox", "data-role": "show-ids"});
  var title = G2V.el("div", {"class": "g2v-title", text: d.n_chars + " characters \u2192 " + n + " tokens"});
  app.appendChild(G2V.el("div", {"class": "g2v-header"}, [title, G2V.el("div", {"class": "g2v-controls"}, [
    G2V.el("span", {"class": "g2v-note", text: d.n_bytes + " UTF-8 bytes, " +
      (n ? (d.n_bytes / n).toFixed(2) : "0") + " bytes per token"}),
    G2V.el("label", {"class": "g2v-label"}, [idsBox, " show ids"])])]));
  var text = G2V.el("div", {"class": "g2v-text g2v-tokens", "data-role": "tokens",
    style: {lineHeight: "2.1", fontSize: "14px"}});
  var info = G2V.el("div", {"class": "g2v-readout", "data-role": "info",
    text: "Hover a token for its id and bytes. \u2423 is a space, \u21b5 a newline: GPT-2 keeps a word's leading space inside its token."});
  var spans = [];
  d.ids.forEach(function (id, k) {
    var span = G2V.el("span", {"class": "g2v-tok", "data-index": k,
      style: {backgroundColor: G2V.TOKEN_COLOURS[k % G2V.TOKEN_COLOURS.length], margin: "0 1px 0 0"}});
    span.addEventListener("mouseenter", function () { show(k); });
    text.appendChild(span); spans.push(span);
  });
  function fill() {
    spans.forEach(function (span, k) {
      G2V.clear(span);
      if (idsBox.checked) span.textContent = String(d.ids[k]);
      else G2V.markWhitespace(span, d.labels[k]);
      var br = span.nextSibling && span.nextSibling.nodeName === "BR";
      if (!idsBox.checked && d.texts[k].indexOf("\n") >= 0 && !br) span.parentNode.insertBefore(G2V.el("br", {}), span.nextSibling);
      if (idsBox.checked && br) span.parentNode.removeChild(span.nextSibling);
      span.style.padding = idsBox.checked ? "1px 4px" : "1px 1px";
    });
  }
  function show(k) {
    spans.forEach(function (s, j) { s.classList.toggle("g2v-query", j === k); });
    root.setAttribute("data-token", k);
    G2V.clear(info);
    info.appendChild(G2V.el("span", {"class": "g2v-strong", text: d.labels[k]}));
    info.appendChild(document.createTextNode("  token " + k + " of " + n + " \u00b7 id " + d.ids[k] +
      " \u00b7 bytes " + d.bytes[k] + (d.texts[k].indexOf("\ufffd") >= 0
        ? " \u00b7 part of a character split across tokens (\ufffd)" : "")));
  }
  idsBox.addEventListener("change", fill);
  fill();
  app.appendChild(text);
  app.appendChild(info);
};
