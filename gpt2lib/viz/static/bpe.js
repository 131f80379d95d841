/* gpt2lib in the browser: GPT-2's byte-level BPE tokenizer, a port of gpt2lib/bpe.py
   and gpt2lib/tokenizer.py (which follow OpenAI's gpt-2/src/encoder.py), fed with the
   project's own vocab.json and merges.txt.

   Why a port and not an npm package (js-tiktoken, gpt-tokenizer): chapter 2 teaches
   exactly this loop (split with GPT-2's pattern, then merge the lowest-ranked pair until
   none is left), so the page runs the code the reader has just written, from the same
   two files, with no dependency to pin, vendor and audit; and the packages ship their
   own copy of the vocabulary (1-2 MB more), while the book must use gpt2lib/data's.
   The port is ~150 lines and is checked id for id against gpt2lib and tiktoken
   (tests/test_web_engine.py).

   Differences from Python that matter, and how they are handled:
   - Python's `regex` \s is Unicode's White_Space property; JavaScript's \s also matches
     U+FEFF and misses U+0085, so the pattern spells \p{White_Space} out.
   - JavaScript strings are UTF-16: lone surrogates become U+FFFD before encoding, as
     gpt2lib (and tiktoken) do; the /u flag makes \p{L} match whole code points.
   - Token labels decode bytes with Python's rules (one U+FFFD per maximal invalid
     subpart, or \xNN per byte for errors="backslashreplace").

   Loaded on demand by live-text.js; defines globalThis.G2VWeb.Tokenizer. */
(function (root) {
  "use strict";
  var G2VWeb = root.G2VWeb = root.G2VWeb || {};

  /* gpt2lib.bpe.GPT2_PATTERN, with \s written as \p{White_Space} (see above). */
  var GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\p{White_Space}\\p{L}\\p{N}]+" +
    "|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+";
  var LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
  var ENDOFTEXT = "<|endoftext|>";

  /* GPT-2's table of 256 printable characters, one per byte (gpt2lib.bpe.bytes_to_unicode). */
  function bytesToUnicode() {
    var visible = [], b;
    for (b = 33; b <= 126; b++) visible.push(b);
    for (b = 161; b <= 172; b++) visible.push(b);
    for (b = 174; b <= 255; b++) visible.push(b);
    var table = new Array(256), shifted = 0;
    visible.forEach(function (v) { table[v] = String.fromCharCode(v); });
    for (b = 0; b < 256; b++) {
      if (table[b] === undefined) { table[b] = String.fromCharCode(256 + shifted); shifted++; }
    }
    return table;
  }
  var BYTE_TO_CHAR = bytesToUnicode();
  var CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map(function (c, b) { return [c, b]; }));

  var encoder = new TextEncoder();

  /* Python's bytes.decode("utf-8", errors): "replace" gives one U+FFFD per maximal
     invalid subpart (as CPython does), "backslashreplace" gives \xNN for each of its bytes. */
  function decodeUtf8(bytes, errors) {
    var out = "", i = 0, n = bytes.length;
    function bad(from, to) {
      if (errors === "replace") { out += "\ufffd"; return; }
      for (var k = from; k < to; k++) out += "\\x" + (bytes[k] < 16 ? "0" : "") + bytes[k].toString(16);
    }
    while (i < n) {
      var b = bytes[i], need = 0, lo = 0x80, hi = 0xbf, cp;
      if (b < 0x80) { out += String.fromCharCode(b); i++; continue; }
      if (b >= 0xc2 && b <= 0xdf) { need = 1; cp = b & 0x1f; }
      else if (b >= 0xe0 && b <= 0xef) { need = 2; cp = b & 0x0f; if (b === 0xe0) lo = 0xa0; if (b === 0xed) hi = 0x9f; }
      else if (b >= 0xf0 && b <= 0xf4) { need = 3; cp = b & 0x07; if (b === 0xf0) lo = 0x90; if (b === 0xf4) hi = 0x8f; }
      else { bad(i, i + 1); i++; continue; }
      var j = i + 1, k;
      for (k = 0; k < need; k++, j++) {
        var c = bytes[j];
        if (j >= n || c < (k === 0 ? lo : 0x80) || c > (k === 0 ? hi : 0xbf)) break;
        cp = (cp << 6) | (c & 0x3f);
      }
      if (k < need) { bad(i, j); i = j; continue; }
      out += String.fromCodePoint(cp);
      i = j;
    }
    return out;
  }

  /* gpt2lib.viz.labels.visible: whitespace and control characters as visible marks. */
  var VISIBLE = {" ": "\u2423", "\n": "\u21b5", "\r": "\u240d", "\t": "\u21e5", "\u00a0": "\u237d"};
  function visible(text) {
    var out = "";
    for (var ch of text) {
      var c = ch.codePointAt(0);
      if (VISIBLE[ch] !== undefined) out += VISIBLE[ch];
      else if (c < 32 || (c >= 0x7f && c < 0xa0)) out += "\\x" + (c < 16 ? "0" : "") + c.toString(16);
      else out += ch;
    }
    return out;
  }

  /* A GPT-2 tokenizer from vocab (vocab.json's object {printable token: id}) and
     merges (merges.txt's text). encode(text) -> ids, decode(ids) -> text. */
  function Tokenizer(vocab, merges) {
    if (!vocab || typeof merges !== "string") throw new Error("Tokenizer(vocab, merges) needs vocab.json's object and merges.txt's text");
    this.encoder = new Map();
    this.decoder = [];
    this.special = new Map();
    for (var token in vocab) {
      var id = vocab[token];
      if (/^<\|[^|\s]+\|>$/.test(token)) this.special.set(token, id);
      else this.encoder.set(token, id);
      this.decoder[id] = token;
    }
    this.ranks = new Map();
    var lines = merges.split("\n"), rank = 0;
    for (var n = 0; n < lines.length; n++) {
      var line = lines[n];
      if (!line || (n === 0 && line.indexOf("#version") === 0)) continue;
      var parts = line.split(" ");
      if (parts.length !== 2) throw new Error("merges.txt, line " + (n + 1) + ": " + JSON.stringify(line) + " is not a merge (two tokens separated by one space)");
      this.ranks.set(line, rank++);  // "Ġ t": GPT-2's printable form never holds a space
    }
    this.n_vocab = this.decoder.length;
    this.pattern = new RegExp(GPT2_PATTERN, "gu");
    this.cache = new Map();
  }

  /* Pre-tokenization: "Hello world!" -> ["Hello", " world", "!"]. */
  Tokenizer.prototype.split = function (text) { return text.match(this.pattern) || []; };

  /* GPT-2's merge loop on one chunk in printable form: merge the lowest-ranked adjacent
     pair everywhere, left to right, until no pair has a rank. "Ġhello" -> ["Ġhello"]. */
  Tokenizer.prototype.bpe = function (word) {
    var parts = Array.from(word), ranks = this.ranks;
    while (parts.length > 1) {
      var best = -1, bestRank = Infinity;
      for (var i = 0; i + 1 < parts.length; i++) {
        var r = ranks.get(parts[i] + " " + parts[i + 1]);
        if (r !== undefined && r < bestRank) { bestRank = r; best = i; }
      }
      if (best < 0) break;
      var first = parts[best], second = parts[best + 1], out = [];
      for (i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === first && parts[i + 1] === second) { out.push(first + second); i++; }
        else out.push(parts[i]);
      }
      parts = out;
    }
    return parts;
  };

  Tokenizer.prototype.encodeChunk = function (chunk) {
    var ids = this.cache.get(chunk);
    if (ids === undefined) {
      var printable = "";
      encoder.encode(chunk).forEach(function (b) { printable += BYTE_TO_CHAR[b]; });
      var enc = this.encoder;
      ids = this.bpe(printable).map(function (piece) { return enc.get(piece); });
      if (this.cache.size > 100000) this.cache.clear();
      if (chunk.length <= 256) this.cache.set(chunk, ids);
    }
    return ids;
  };

  /* Every character as plain text (gpt2lib's encode_ordinary). */
  Tokenizer.prototype.encodeOrdinary = function (text) {
    if (typeof text !== "string") throw new TypeError("expected text as a string, got " + typeof text);
    text = text.replace(LONE_SURROGATE, "\ufffd");
    var ids = [], chunks = this.split(text);
    for (var k = 0; k < chunks.length; k++) Array.prototype.push.apply(ids, this.encodeChunk(chunks[k]));
    return ids;
  };

  /* gpt2lib's Tokenizer.encode with its two common policies: allowedSpecial "all" encodes
     <|endoftext|> as its id (the token view); by default special-token text is an error,
     as in gpt2lib and tiktoken. */
  Tokenizer.prototype.encode = function (text, allowedSpecial) {
    if (typeof text !== "string") throw new TypeError("expected text as a string, got " + typeof text);
    var specials = Array.from(this.special.keys());
    if (allowedSpecial !== "all") {
      specials.forEach(function (token) {
        if (text.indexOf(token) >= 0) throw new Error("the text contains the special token " + token +
          "; remove it (only the token view encodes it as its id " + this.special.get(token) + ")");
      }, this);
      return this.encodeOrdinary(text);
    }
    if (!specials.length) return this.encodeOrdinary(text);
    var escaped = specials.sort(function (a, b) { return b.length - a.length; })
      .map(function (t) { return t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); });
    var parts = text.split(new RegExp("(" + escaped.join("|") + ")")), ids = [];
    for (var i = 0; i < parts.length; i++) {
      if (i % 2) ids.push(this.special.get(parts[i]));
      else Array.prototype.push.apply(ids, this.encodeOrdinary(parts[i]));
    }
    return ids;
  };

  Tokenizer.prototype.checkId = function (id) {
    if (!Number.isInteger(id) || this.decoder[id] === undefined) {
      throw new Error("token id " + id + " is not in this vocabulary (valid ids: 0.." + (this.n_vocab - 1) + ")");
    }
    return id;
  };

  /* One token's bytes: 262 -> [32, 116, 104, 101] (" the"); a special token gives its text. */
  Tokenizer.prototype.tokenBytes = function (id) {
    var token = this.decoder[this.checkId(id)];
    if (this.special.has(token)) return encoder.encode(token);
    var out = new Uint8Array(token.length);
    for (var k = 0; k < token.length; k++) out[k] = CHAR_TO_BYTE.get(token[k]);
    return out;
  };

  Tokenizer.prototype.decodeBytes = function (ids) {
    var pieces = ids.map(this.tokenBytes, this), n = 0, k = 0;
    pieces.forEach(function (p) { n += p.length; });
    var out = new Uint8Array(n);
    pieces.forEach(function (p) { out.set(p, k); k += p.length; });
    return out;
  };

  /* Token ids -> text; a character split across tokens becomes U+FFFD (errors="replace"). */
  Tokenizer.prototype.decode = function (ids) { return decodeUtf8(this.decodeBytes(ids), "replace"); };

  /* gpt2lib.viz.labels.token_label: the token's text with whitespace marked. */
  Tokenizer.prototype.tokenLabel = function (id) { return visible(decodeUtf8(this.tokenBytes(id), "replace")); };

  G2VWeb.Tokenizer = Tokenizer;
  G2VWeb.decodeUtf8 = decodeUtf8;
  G2VWeb.visible = visible;
  G2VWeb.GPT2_PATTERN = GPT2_PATTERN;
})(typeof globalThis !== "undefined" ? globalThis : this);
