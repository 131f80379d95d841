/* gpt2lib in the browser: GPT-2's forward pass in plain JavaScript, fp32, for the
   bundled model gpt2-shakespeare (6 layers of 192, 6 heads, 12.4M parameters).

   The same computation as gpt2lib/model.py (Radford et al. 2019; OpenAI's
   gpt-2/src/model.py), with the checkpoint's names (wte, wpe, h.{i}.ln_1,
   h.{i}.attn.c_attn, h.{i}.attn.c_proj, h.{i}.ln_2, h.{i}.mlp.c_fc, h.{i}.mlp.c_proj,
   ln_f; lm_head is wte, tied). The file keeps the checkpoint's Conv1D layout ([in, out]);
   loadModel turns the four matrices of each block into [out, in] (see linear).

   Why plain JavaScript and not onnxruntime-web or WebGPU: for a model this small one
   forward pass of 64 tokens is ~0.2 GFLOP, a fraction of a second on one CPU core, so a
   runtime (megabytes of wasm, vendored, pinned, plus an ONNX export with the attention
   weights as extra outputs) buys little; 200 lines that read like chapter 6, run from
   file:// and give every head's weights directly are easier to check and to teach.
   Arithmetic is fp32 storage with JavaScript's double-precision sums, so the results
   agree with gpt2lib's fp32 forward pass to ~1e-5 (tests/test_web_engine.py states the
   measured difference).

   Weights arrive as a script (web-model/<name>.js, written by scripts/export_web_model.py)
   that sets G2VWeb.weights = {config, tensors: {name: [offset, shape]}, data: base64 of
   the fp16 values}; a script, not a fetch, so the book works from file:// too.
   Shapes: T tokens, C = n_embd, nh heads, hs = C / nh, V = n_vocab. */
(function (root) {
  "use strict";
  var G2VWeb = root.G2VWeb = root.G2VWeb || {};

  /* The fp16 bit patterns 0..65535 as fp32 values (IEEE 754 half precision). */
  var HALF = null;
  function halfTable() {
    if (HALF) return HALF;
    HALF = new Float32Array(65536);
    for (var h = 0; h < 65536; h++) {
      var sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
      if (exp === 0) HALF[h] = sign * frac * Math.pow(2, -24);  // subnormal (and zero)
      else if (exp === 31) HALF[h] = frac ? NaN : sign * Infinity;
      else HALF[h] = sign * (1 + frac / 1024) * Math.pow(2, exp - 15);
    }
    return HALF;
  }

  function base64Bytes(text) {
    if (typeof Buffer !== "undefined" && typeof window === "undefined") {  // node
      var buf = Buffer.from(text, "base64");
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
    }
    var bin = atob(text), out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  /* The exported weights -> {config, w: {name: Float32Array}}; checks every tensor's shape. */
  function loadModel(packed) {
    if (!packed || !packed.config || !packed.tensors || typeof packed.data !== "string") {
      throw new Error("no model weights: web-model/<model>.js did not define G2VWeb.weights; rebuild the book " +
        "(bash scripts/build_book.sh runs scripts/export_web_model.py)");
    }
    var cfg = packed.config, bytes = base64Bytes(packed.data);
    if (bytes.length % 2) throw new Error("the weights' data is not a whole number of fp16 values");
    var half = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    var table = halfTable(), w = {};
    var C = cfg.n_embd, V = cfg.n_vocab, want = {"wte.weight": [V, C], "wpe.weight": [cfg.n_ctx, C],
      "ln_f.weight": [C], "ln_f.bias": [C]};
    for (var l = 0; l < cfg.n_layer; l++) {
      var p = "h." + l + ".";
      want[p + "ln_1.weight"] = [C]; want[p + "ln_1.bias"] = [C];
      want[p + "attn.c_attn.weight"] = [C, 3 * C]; want[p + "attn.c_attn.bias"] = [3 * C];
      want[p + "attn.c_proj.weight"] = [C, C]; want[p + "attn.c_proj.bias"] = [C];
      want[p + "ln_2.weight"] = [C]; want[p + "ln_2.bias"] = [C];
      want[p + "mlp.c_fc.weight"] = [C, 4 * C]; want[p + "mlp.c_fc.bias"] = [4 * C];
      want[p + "mlp.c_proj.weight"] = [4 * C, C]; want[p + "mlp.c_proj.bias"] = [C];
    }
    Object.keys(want).forEach(function (name) {
      var entry = packed.tensors[name];
      if (!entry) throw new Error("the weights lack " + name + "; re-export them with scripts/export_web_model.py");
      var offset = entry[0], shape = entry[1], size = shape.reduce(function (a, b) { return a * b; }, 1);
      if (shape.join(",") !== want[name].join(",")) {
        throw new Error(name + " has shape [" + shape + "], the config needs [" + want[name] + "]");
      }
      if (offset + size > half.length) throw new Error(name + " runs past the end of the weights' data");
      var t = new Float32Array(size);
      for (var k = 0; k < size; k++) t[k] = table[half[offset + k]];
      // the [in, out] matrices are kept as [out, in] for linear() below
      w[name] = shape.length === 2 && /\.c_(attn|proj|fc)\.weight$/.test(name) ? transpose(t, shape[0], shape[1]) : t;
    });
    return new GPT2(cfg, w);
  }

  function GPT2(config, weights) {
    this.config = config;
    this.w = weights;
  }

  /* out[T, N] = x[T, K] @ W + b[N], with W given transposed, WT: [N, K] (nn.Linear's
     [out, in]): each output is a dot product of two contiguous rows, which V8 runs about
     twice as fast as the [in, out] order (four partial sums break the dependency chain). */
  function linear(x, T, K, WT, b, N) {
    var out = new Float32Array(T * N), K4 = K - (K % 4);
    for (var t = 0; t < T; t++) {
      var xo = t * K;
      for (var n = 0; n < N; n++) {
        var s0 = 0, s1 = 0, s2 = 0, s3 = 0, wo = n * K, k;
        for (k = 0; k < K4; k += 4) {
          s0 += x[xo + k] * WT[wo + k]; s1 += x[xo + k + 1] * WT[wo + k + 1];
          s2 += x[xo + k + 2] * WT[wo + k + 2]; s3 += x[xo + k + 3] * WT[wo + k + 3];
        }
        for (; k < K; k++) s0 += x[xo + k] * WT[wo + k];
        out[t * N + n] = b[n] + ((s0 + s1) + (s2 + s3));
      }
    }
    return out;
  }

  /* [K, N] -> [N, K] */
  function transpose(W, K, N) {
    var out = new Float32Array(K * N);
    for (var k = 0; k < K; k++) for (var n = 0; n < N; n++) out[n * K + k] = W[k * N + n];
    return out;
  }

  /* Per token over C: (x - mean) / sqrt(var + eps) * weight + bias, biased variance. */
  function layerNorm(x, T, C, weight, bias, eps) {
    var out = new Float32Array(T * C);
    for (var t = 0; t < T; t++) {
      var o = t * C, mean = 0, v = 0, c;
      for (c = 0; c < C; c++) mean += x[o + c];
      mean /= C;
      for (c = 0; c < C; c++) { var d = x[o + c] - mean; v += d * d; }
      var inv = 1 / Math.sqrt(v / C + eps);
      for (c = 0; c < C; c++) out[o + c] = (x[o + c] - mean) * inv * weight[c] + bias[c];
    }
    return out;
  }

  /* GPT-2's GELU, with the tanh approximation (gelu_new), in place. */
  var GELU_K = Math.sqrt(2 / Math.PI);
  function gelu(x) {
    for (var i = 0; i < x.length; i++) {
      var v = x[i];
      x[i] = 0.5 * v * (1 + Math.tanh(GELU_K * (v + 0.044715 * v * v * v)));
    }
    return x;
  }

  /* Causal self-attention of one layer. qkv: [T, 3C] (q, k, v side by side, each split
     into nh heads of hs). Returns {y: [T, C] (heads merged), att: [nh, T, T]}. */
  function attention(qkv, T, C, nh) {
    var hs = C / nh, scale = 1 / Math.sqrt(hs), att = new Float32Array(nh * T * T), y = new Float32Array(T * C);
    var scores = new Float64Array(T);
    for (var h = 0; h < nh; h++) {
      var qo = h * hs, ko = C + h * hs, vo = 2 * C + h * hs;
      for (var i = 0; i < T; i++) {
        var max = -Infinity, j, d;
        for (j = 0; j <= i; j++) {  // keys j > i are the future: weight 0
          var s = 0;
          for (d = 0; d < hs; d++) s += qkv[i * 3 * C + qo + d] * qkv[j * 3 * C + ko + d];
          scores[j] = s * scale;
          if (scores[j] > max) max = scores[j];
        }
        var z = 0;
        for (j = 0; j <= i; j++) { scores[j] = Math.exp(scores[j] - max); z += scores[j]; }
        var row = (h * T + i) * T;
        for (j = 0; j <= i; j++) {
          var p = scores[j] / z;
          att[row + j] = p;
          for (d = 0; d < hs; d++) y[i * C + qo + d] += p * qkv[j * 3 * C + vo + d];  // [nh, T, hs] -> [T, C]
        }
      }
    }
    return {y: y, att: att};
  }

  /* ids: T token ids (T <= n_ctx). options.logits: "last" (default: the next-token
     scores, [V]), "all" ([T, V]) or "none".
     Returns {logits: Float32Array, attentions: n_layer x Float32Array [nh, T, T]}. */
  GPT2.prototype.forward = function (ids, options) {
    var cfg = this.config, w = this.w, C = cfg.n_embd, T = ids.length, V = cfg.n_vocab, nh = cfg.n_head;
    var which = (options && options.logits) || "last";
    if (!T) throw new Error("forward needs at least one token");
    if (T > cfg.n_ctx) throw new Error(T + " tokens exceed the model's context of " + cfg.n_ctx + "; pass the last " + cfg.n_ctx);
    var x = new Float32Array(T * C), t, c;
    for (t = 0; t < T; t++) {
      var id = ids[t];
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error("token id " + id + " is outside the vocabulary (0.." + (V - 1) + ")");
      for (c = 0; c < C; c++) x[t * C + c] = w["wte.weight"][id * C + c] + w["wpe.weight"][t * C + c];  // [T, C]
    }
    var attentions = [];
    for (var l = 0; l < cfg.n_layer; l++) {
      var p = "h." + l + ".";
      var h = layerNorm(x, T, C, w[p + "ln_1.weight"], w[p + "ln_1.bias"], cfg.eps);
      var qkv = linear(h, T, C, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"], 3 * C);  // [T, C] -> [T, 3C]
      var a = attention(qkv, T, C, nh);  // [T, 3C] -> [T, C], [nh, T, T]
      attentions.push(a.att);
      var proj = linear(a.y, T, C, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"], C);  // [T, C]
      for (c = 0; c < T * C; c++) x[c] += proj[c];
      h = layerNorm(x, T, C, w[p + "ln_2.weight"], w[p + "ln_2.bias"], cfg.eps);
      var f = gelu(linear(h, T, C, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"], 4 * C));  // [T, C] -> [T, 4C]
      proj = linear(f, T, 4 * C, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"], C);  // [T, 4C] -> [T, C]
      for (c = 0; c < T * C; c++) x[c] += proj[c];
    }
    var out = {attentions: attentions, logits: null};
    if (which === "none") return out;
    var first = which === "all" ? 0 : T - 1, rows = T - first;
    x = layerNorm(x.subarray(first * C), rows, C, w["ln_f.weight"], w["ln_f.bias"], cfg.eps);
    var wte = w["wte.weight"], logits = new Float32Array(rows * V);  // lm_head is wte: [rows, C] @ [V, C]^T -> [rows, V]
    for (t = 0; t < rows; t++) {
      for (var v = 0; v < V; v++) {
        var s0 = 0, s1 = 0, o = v * C, xo = t * C;
        for (c = 0; c + 1 < C; c += 2) { s0 += x[xo + c] * wte[o + c]; s1 += x[xo + c + 1] * wte[o + c + 1]; }
        if (c < C) s0 += x[xo + c] * wte[o + c];
        logits[t * V + v] = s0 + s1;
      }
    }
    out.logits = logits;
    return out;
  };

  G2VWeb.loadModel = loadModel;
  G2VWeb.GPT2 = GPT2;
})(typeof globalThis !== "undefined" ? globalThis : this);
