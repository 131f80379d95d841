/* gpt2lib views in the static book: "Try your own text". The attention, token and
   sampling views get a text box; the reader's text is tokenized and run through the
   bundled model in the page (bpe.js, engine.js, viewdata.js), and the view is drawn
   again from data in the same JSON shape as gpt2lib.viz writes.

   Only in the static book: a page Sphinx built carries data-content_root on <html>;
   JupyterLab has a kernel and the live_* views instead, and a saved standalone page
   has neither, so there the view is exactly as before. The files under web-model/
   (scripts/export_web_model.py, run by scripts/build_book.sh) are loaded only when the
   reader asks, as <script> elements: nothing is fetched at first load, nothing comes
   from another host, and file:// works as well as http. */
G2V.LIVE = {
  tokens: {files: ["bpe.js", "viewdata.js", "tokenizer.js"], delay: 150,
    placeholder: "Type any text to see its tokens",
    build: function (web, d, text) { return web.tokenData(web.tokenizer, text); }},
  attention: {files: ["bpe.js", "engine.js", "viewdata.js", "tokenizer.js", "gpt2-shakespeare.js"], delay: 500,
    placeholder: "Type a sentence to see where the bundled model looks",
    build: function (web, d, text) {  // the chapter's cap on tokens, if it cut its text
      return web.attentionData(web.model, web.tokenizer, text, d.total > d.T ? d.T : Math.max(48, d.T));
    }},
  sampling: {files: ["bpe.js", "engine.js", "viewdata.js", "tokenizer.js", "gpt2-shakespeare.js"], delay: 500,
    placeholder: "Type a prompt to see the bundled model's next token",
    build: function (web, d, text) {
      return web.samplingData(web.model, web.tokenizer, text, d.ids.length, d.n_bars, d.temps);
    }}
};

/* Load web-model/<name> once per page, as a script (works from file://). */
G2V.loadWeb = function (base, names) {
  var loads = window.G2VWebLoads = window.G2VWebLoads || {};
  return Promise.all(names.map(function (name) {
    if (!loads[name]) loads[name] = new Promise(function (resolve, reject) {
      var s = document.createElement("script");
      s.setAttribute("src", new URL(base + "web-model/" + name, document.baseURI).href);
      s.async = false;  // run in the order asked
      s.onload = resolve;
      s.onerror = function () {
        delete loads[name];
        reject(new Error("could not load web-model/" + name + ": build the book with bash scripts/build_book.sh, " +
          "which writes the live-mode files (scripts/export_web_model.py)"));
      };
      document.head.appendChild(s);
    });
    return loads[name];
  })).then(function () {
    var web = window.G2VWeb;
    if (!web.tokenizer) web.tokenizer = new web.Tokenizer(web.tokenizerFiles.vocab, web.tokenizerFiles.merges);
    if (web.weights && !web.model) web.model = web.loadModel(web.weights);
    return web;
  });
};

G2V.liveText = function (script, id, kind, mount) {
  var spec = G2V.LIVE[kind], base = document.documentElement.getAttribute("data-content_root");
  var root = (script && script.parentNode) || document.getElementById(id);
  if (!spec || base === null || !root || root.getAttribute("data-live") !== "1" || root.querySelector(".g2v-livetext")) return;
  var app = root.querySelector(".g2v-app"), original = JSON.parse(root.querySelector("script.g2v-data").textContent);
  var input = G2V.el("textarea", {"class": "g2v-livetext-input", "data-role": "live-input", rows: 2,
    placeholder: spec.placeholder, "aria-label": "Your own text",
    style: {font: "inherit", fontSize: "13px", width: "min(100%, 520px)", padding: "4px", boxSizing: "border-box"}});
  var button = G2V.el("button", {type: "button", "class": "g2v-button", "data-role": "live-button", text: "Try your own text"});
  var back = G2V.el("button", {type: "button", "class": "g2v-chipbtn", "data-role": "live-reset",
    text: "Back to the chapter's text", style: {display: "none"}});
  var status = G2V.el("span", {"class": "g2v-note", "data-role": "live-status", "aria-live": "polite",
    text: kind === "tokens" ? "GPT-2's tokenizer runs in this page." :
      "The bundled model runs in this page, offline (loaded once, about 35 MB, when you ask)."});
  root.insertBefore(G2V.el("div", {"class": "g2v-livetext g2v-controls", style: {margin: "0 0 8px"}},
    [input, button, back, status]), app);
  var on = false, timer = null, asked = 0;

  function draw(data) {
    G2V.clear(app);
    mount(app, data);
  }
  function run() {
    var text = input.value, ticket = ++asked;
    if (!text) { status.textContent = "Type a text first."; return; }
    status.textContent = on ? "Computing\u2026" : "Loading the tokenizer" + (kind === "tokens" ? "" : " and the model") + "\u2026";
    button.disabled = true;
    G2V.loadWeb(base, spec.files).then(function (web) {
      if (ticket !== asked) return;  // a newer text was asked for meanwhile
      var t0 = performance.now(), data = spec.build(web, original, text), ms = performance.now() - t0;
      draw(data);
      on = true;
      root.setAttribute("data-source", "live");
      root.setAttribute("data-live-ms", ms.toFixed(1));
      button.textContent = "Redraw";
      back.style.display = "";
      var n = data.ids ? (kind === "sampling" ? data.n_prompt : data.ids.length) : data.T;
      status.textContent = (kind === "tokens" ? "GPT-2's tokenizer" : web.weights.name) + " ran in this page on " + n +
        " tokens in " + Math.round(ms) + " ms" + (kind === "tokens" ? "." : (data.total > data.T ? " (the first " +
        data.T + " of " + data.total + " tokens)." : "."));
    }).catch(function (err) {
      if (ticket === asked) status.textContent = String(err.message || err);
    }).then(function () { button.disabled = false; });
  }
  button.addEventListener("click", run);
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); run(); }  // Shift+Enter: a new line
  });
  input.addEventListener("input", function () {  // once live, redraw as the reader types
    if (!on) return;
    clearTimeout(timer);
    timer = setTimeout(run, spec.delay);
  });
  back.addEventListener("click", function () {
    asked++; on = false; clearTimeout(timer);
    draw(original);
    root.removeAttribute("data-source");
    button.textContent = "Try your own text";
    back.style.display = "none";
    status.textContent = "Showing the chapter's text again.";
  });
};
