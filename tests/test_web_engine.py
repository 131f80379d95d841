"""The book's live mode in node: the JavaScript tokenizer, forward pass and view data
(gpt2lib/viz/static/bpe.js, engine.js, viewdata.js, fed with the files
scripts/export_web_model.py writes) against gpt2lib, tiktoken and transformers.

- token ids identical to gpt2lib's and tiktoken's on the tokenizer test corpus, plus the
  whitespace characters where JavaScript's \\s and Unicode's White_Space disagree;
- every token's label as gpt2lib.viz.labels.token_label makes it;
- logits and every layer's and head's attention weights within TOL of gpt2lib's fp32
  forward pass and of transformers' GPT-2 loading the same checkpoint file;
- the data of the attention, token and sampling views equal to what gpt2lib.viz writes;
- controls: a perturbed weight and a pattern with JavaScript's own \\s make the
  comparisons fail.

Needs node (>= 18) on PATH or in NODE; skipped without it.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import export_web_model  # noqa: E402

import gpt2lib  # noqa: E402
from gpt2lib import viz  # noqa: E402
from gpt2lib.tokenizer import GPT2_DIR, get_tokenizer, tiktoken_encoding  # noqa: E402

NODE = os.environ.get("NODE") or shutil.which("node") or "/usr/bin/node"
pytestmark = pytest.mark.skipif(not Path(NODE).exists() and not shutil.which(NODE), reason="node is not installed")

# fp32 in torch against fp32 storage with double sums in JavaScript: measured ~1e-5 on
# logits of size ~10, ~1e-7 on attention weights; 1e-3 is what the book needs.
TOL = 1e-3

_spec = importlib.util.spec_from_file_location("tokenizer_tests", ROOT / "tests" / "test_tokenizer.py")
_tokenizer_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tokenizer_tests)
CORPUS = dict(_tokenizer_tests.CORPUS)
CORPUS |= {
    # where JavaScript's \s (U+FEFF, no U+0085) and White_Space (U+0085, no U+FEFF) differ
    "nel_and_bom": "a\u0085b \u0085\u0085c\ufeffd \ufeff e\u001cf\u200bg\u180eh a \ufeffb word \u0085word",
    "unicode_spaces": "x\u00a0y\u2003z\u3000w\u2028v\u2029u \u202f\u205ft",
    "lone_surrogate": "ab\ud800cd \udfff e",
    "long_word": "supercalifragilisticexpialidocious" * 8,
}
del CORPUS["endoftext"]  # special-token text: a separate test below

TEXTS = [
    "ROMEO: But, soft! what light through yonder window breaks? It is the east, and Juliet is the sun.",
    "KING HENRY V:\nOnce more unto the breach, dear friends,",
    "a",
    " king lord love death night sword crown heart king lord love death night sword crown heart",
]

DRIVER = r"""
const fs = require("fs"), vm = require("vm"), path = require("path");
const [dir, jobFile, outDir] = process.argv.slice(2);
for (const f of ["bpe.js", "engine.js", "viewdata.js", "tokenizer.js", "gpt2-shakespeare.js"]) {
  vm.runInThisContext(fs.readFileSync(path.join(dir, f), "utf8"), {filename: f});
}
const job = JSON.parse(fs.readFileSync(jobFile, "utf8"));
const files = G2VWeb.tokenizerFiles, tok = new G2VWeb.Tokenizer(files.vocab, files.merges);
if (job.pattern) tok.pattern = new RegExp(job.pattern, "gu");
const out = {};
const run = (f) => { try { return f(); } catch (e) { return {error: String(e.message || e)}; } };
if (job.encode) out.encode = job.encode.map((t) => run(() => tok.encode(t)));
if (job.encode_all) out.encode_all = job.encode_all.map((t) => run(() => tok.encode(t, "all")));
if (job.labels) {
  const labels = [], raw = [];
  for (let i = 0; i < tok.n_vocab; i++) {
    labels.push(tok.tokenLabel(i));
    raw.push(G2VWeb.visible(G2VWeb.decodeUtf8(tok.tokenBytes(i), "backslashreplace")));
  }
  out.labels = labels; out.raw_labels = raw;
}
if (job.decode_bytes) out.decode_bytes = job.decode_bytes.map((b) => [G2VWeb.decodeUtf8(Uint8Array.from(b), "replace"),
  G2VWeb.decodeUtf8(Uint8Array.from(b), "backslashreplace")]);
if (job.forward || job.views || job.time || job.bad) {
  const model = G2VWeb.loadModel(G2VWeb.weights);
  for (const p of job.perturb || []) model.w[p.name][p.index] += p.delta;
  if (job.forward) out.forward = job.forward.map((ids, k) => {
    const r = model.forward(ids, {logits: "all"});
    fs.writeFileSync(path.join(outDir, "logits" + k + ".f32"), Buffer.from(r.logits.buffer));
    const att = new Float32Array(r.attentions.length * r.attentions[0].length);
    r.attentions.forEach((a, l) => att.set(a, l * a.length));
    fs.writeFileSync(path.join(outDir, "att" + k + ".f32"), Buffer.from(att.buffer));
    const last = model.forward(ids, {logits: "last"}).logits;
    return {T: ids.length, last_equal: last.every((v, i) => v === r.logits[(ids.length - 1) * last.length + i])};
  });
  if (job.views) out.views = job.views.map((v) => run(() =>
    v.kind === "attention" ? G2VWeb.attentionData(model, tok, v.text, v.max_tokens)
    : v.kind === "tokens" ? G2VWeb.tokenData(tok, v.text)
    : G2VWeb.samplingData(model, tok, v.text, v.n_top, v.n_bars, v.temps)));
  if (job.time) {
    const ids = tok.encode(job.time).slice(0, 64), times = [];
    for (let r = 0; r < 4; r++) { const t0 = performance.now(); model.forward(ids, {logits: "last"}); times.push(performance.now() - t0); }
    out.time = {T: ids.length, ms: Math.min(...times.slice(1))};
  }
  if (job.bad) out.bad = {
    long: run(() => model.forward(new Array(model.config.n_ctx + 1).fill(0))),
    id: run(() => model.forward([50257])),
    missing: run(() => { const w = Object.assign({}, G2VWeb.weights, {tensors: Object.assign({}, G2VWeb.weights.tensors)});
      delete w.tensors["h.3.mlp.c_fc.bias"]; return G2VWeb.loadModel(w); }),
    special: run(() => tok.encode("a<|endoftext|>b")),
  };
}
fs.writeFileSync(path.join(outDir, "out.json"), JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory) -> Path:
    """The files the book serves under web-model/, exported from the bundled model."""
    out = tmp_path_factory.mktemp("web-model")
    export_web_model.export(out)
    return out


@pytest.fixture(scope="module")
def node_run(web_dir, tmp_path_factory):
    """node_run(job) -> (out dict, directory of the binary outputs)."""
    driver = web_dir / "driver.js"
    driver.write_text(DRIVER)

    def _run(job: dict):
        work = tmp_path_factory.mktemp("node")
        (work / "job.json").write_text(json.dumps(job))
        result = subprocess.run([NODE, str(driver), str(web_dir), str(work / "job.json"), str(work)],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"node failed:\n{result.stderr[-3000:]}"
        return json.loads((work / "out.json").read_text()), work

    return _run


@pytest.fixture(scope="module")
def model():
    return gpt2lib.from_pretrained(gpt2lib.BUNDLED_MODEL).eval()


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer()


def test_token_ids_equal_gpt2lib_and_tiktoken(node_run, tok):
    tt = tiktoken_encoding()
    names = list(CORPUS)
    out, _ = node_run({"encode": [CORPUS[n] for n in names]})
    for name, ids in zip(names, out["encode"]):
        text = CORPUS[name]
        want = tok.encode(text)
        assert ids == want, f"{name}: JavaScript gives {ids[:20]}..., gpt2lib {want[:20]}..."
        assert want == tt.encode(text, disallowed_special=()), f"{name}: gpt2lib and tiktoken differ"
    print(f"[PASS] bpe.js: token ids equal gpt2lib's and tiktoken's on {len(names)} texts")


def test_special_token_policy(node_run, tok):
    text = _tokenizer_tests.CORPUS["endoftext"]
    out, _ = node_run({"encode_all": [text], "encode": [text]})
    assert out["encode_all"][0] == tok.encode(text, allowed_special="all")
    assert "special token <|endoftext|>" in out["encode"][0]["error"]
    print("[PASS] bpe.js: <|endoftext|> is its id in the token view, an error elsewhere (as gpt2lib)")


def test_javascript_whitespace_class_is_caught(node_run, tok):
    """Control: GPT-2's pattern with JavaScript's own \\s tokenizes U+0085 and U+FEFF wrongly."""
    text = CORPUS["nel_and_bom"]
    js_pattern = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    out, _ = node_run({"encode": [text], "pattern": js_pattern})
    assert out["encode"][0] != tok.encode(text), "the control did not change the ids: the test cannot see \\s bugs"
    print("[PASS] control: a pattern with JavaScript's \\s gives other ids on U+0085/U+FEFF")


def test_every_token_label_equals_gpt2lib(node_run, tok):
    out, _ = node_run({"labels": True})
    want = [viz.token_label(tok, i) for i in range(tok.n_vocab)]
    raw = [viz.visible(tok.token_bytes(i).decode("utf-8", errors="backslashreplace")) for i in range(tok.n_vocab)]
    bad = [i for i in range(tok.n_vocab) if out["labels"][i] != want[i]]
    assert not bad, f"{len(bad)} labels differ, e.g. id {bad[0]}: {out['labels'][bad[0]]!r} vs {want[bad[0]]!r}"
    bad = [i for i in range(tok.n_vocab) if out["raw_labels"][i] != raw[i]]
    assert not bad, f"{len(bad)} byte labels differ, e.g. id {bad[0]}: {out['raw_labels'][bad[0]]!r} vs {raw[bad[0]]!r}"
    print(f"[PASS] bpe.js: all {tok.n_vocab} token labels equal gpt2lib's (replace and backslashreplace)")


def test_utf8_decoding_follows_python(node_run):
    rng = np.random.default_rng(0)
    cases = [list(b) for b in (b"\xe2\x80", b"\xe2\x80A", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf4\x90\x80\x80",
                               b"\xc0\xaf", b"\xff", "é🤗".encode())]
    cases += [rng.integers(0, 256, size=int(rng.integers(1, 12))).tolist() for _ in range(300)]
    out, _ = node_run({"decode_bytes": cases})
    for b, (replace, backslash) in zip(cases, out["decode_bytes"]):
        assert replace == bytes(b).decode("utf-8", errors="replace"), bytes(b)
        assert backslash == bytes(b).decode("utf-8", errors="backslashreplace"), bytes(b)
    print(f"[PASS] bpe.js: UTF-8 decoding with errors=replace/backslashreplace equals Python's on {len(cases)} byte strings")


def _node_forward(node_run, ids_list, perturb=()):
    out, work = node_run({"forward": ids_list, "perturb": list(perturb)})
    results = []
    for k, ids in enumerate(ids_list):
        T = len(ids)
        logits = np.fromfile(work / f"logits{k}.f32", dtype="<f4").reshape(T, -1)  # [T, V]
        att = np.fromfile(work / f"att{k}.f32", dtype="<f4").reshape(6, 6, T, T)  # [L, nh, T, T]
        assert out["forward"][k]["last_equal"], "the last-position logits differ from the all-position ones"
        results.append((logits, att))
    return results


def _reference(model, ids):
    with torch.no_grad():
        trace = model.trace(torch.tensor([ids]))
    att = torch.stack([a[0] for a in trace.attentions]).numpy()  # L x [nh, T, T] -> [L, nh, T, T]
    return trace.logits[0].numpy(), att


def test_logits_and_attention_match_gpt2lib(node_run, model, tok):
    ids_list = [tok.encode(t) for t in TEXTS]
    ids_list.append(tok.encode((GPT2_DIR.parent / "shakespeare" / "henry_iv_part_1.txt").read_text()[:4000])[:256])
    worst_logit = worst_att = 0.0
    for (logits, att), ids in zip(_node_forward(node_run, ids_list), ids_list):
        ref_logits, ref_att = _reference(model, ids)
        dl, da = np.abs(logits - ref_logits).max(), np.abs(att - ref_att).max()
        assert dl <= TOL and da <= TOL, (f"{len(ids)} tokens: max |logit diff| {dl:.2e}, max |weight diff| {da:.2e} "
                                         f"> {TOL}: is a layer (or the mask, GELU, LayerNorm eps) computed differently?")
        assert np.all(att[..., np.triu_indices(len(ids), 1)[0], np.triu_indices(len(ids), 1)[1]] == 0), "future weights are not 0"
        worst_logit, worst_att = max(worst_logit, dl), max(worst_att, da)
    print(f"[PASS] engine.js: logits within {worst_logit:.1e} and attention weights within {worst_att:.1e} of gpt2lib fp32 "
          f"on {len(ids_list)} texts (T = {', '.join(str(len(i)) for i in ids_list)}; tolerance {TOL})")


def test_logits_and_attention_match_transformers(node_run, tok):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(str(gpt2lib.loading.resolve(gpt2lib.BUNDLED_MODEL)), torch_dtype=torch.float32,
                                         attn_implementation="eager").eval()
    ids = tok.encode(TEXTS[0])
    (logits, att), = _node_forward(node_run, [ids])
    with torch.no_grad():
        out = hf(torch.tensor([ids]), output_attentions=True)
    ref_att = torch.stack([a[0] for a in out.attentions]).numpy()  # L x [nh, T, T] -> [L, nh, T, T]
    dl, da = np.abs(logits - out.logits[0].numpy()).max(), np.abs(att - ref_att).max()
    assert dl <= TOL and da <= TOL, f"against transformers: max |logit diff| {dl:.2e}, max |weight diff| {da:.2e} > {TOL}"
    print(f"[PASS] engine.js: within {dl:.1e} (logits) and {da:.1e} (weights) of transformers' GPT-2 on the same file")


def test_a_perturbed_weight_fails_the_comparison(node_run, model, tok):
    """Control: one weight of one matrix off by 0.05 moves the outputs past TOL."""
    ids = tok.encode(TEXTS[0])
    ref_logits, ref_att = _reference(model, ids)
    for name, index in (("h.2.attn.c_attn.weight", 7), ("h.0.ln_1.bias", 3)):
        (logits, att), = _node_forward(node_run, [ids], [{"name": name, "index": index, "delta": 0.05 if "ln" not in name else 1.0}])
        diff = max(np.abs(logits - ref_logits).max(), np.abs(att - ref_att).max())
        assert diff > TOL, f"perturbing {name}[{index}] left the outputs within {diff:.1e}: the comparison cannot fail"
    print("[PASS] control: a perturbed weight (c_attn, ln_1) puts logits or weights past the tolerance")


def test_view_data_equals_gpt2lib_views(node_run, model, tok):
    sampling = viz.sampling_view(model, tok, TEXTS[1]).data
    jobs = [{"kind": "attention", "text": t, "max_tokens": 48} for t in TEXTS + ["one two " * 40]]
    jobs += [{"kind": "tokens", "text": t} for t in (CORPUS["prose"], CORPUS["emoji_zwj"], CORPUS["chinese"],
                                                       "x<|endoftext|>y\n", "")]
    jobs += [{"kind": "sampling", "text": t, "n_top": 200, "n_bars": 20, "temps": sampling["temps"]}
             for t in (TEXTS[1], TEXTS[2], "word " * 300)]
    out, _ = node_run({"views": jobs})
    for job, got in zip(jobs, out["views"]):
        assert "error" not in got, f"{job['kind']} view of {job['text'][:30]!r}: {got.get('error')}"
        if job["kind"] == "attention":
            want = viz.attention_view(model, tok, job["text"], max_tokens=48).data
            w_got, w_want = np.array(got.pop("w")), np.array(want.pop("w"))
            assert w_got.shape == w_want.shape and np.abs(w_got - w_want).max() <= 1, "the stored weights differ"
            for kind, entry in want.pop("heads").items():
                assert entry["best"][:2] == got["heads"][kind]["best"][:2], f"best {kind} head differs"
            got.pop("heads")
        elif job["kind"] == "tokens":
            want = viz.token_view(tok, job["text"]).data
        else:
            want = viz.sampling_view(model, tok, job["text"], n_top=200, n_bars=20).data
            for key in ("logits", "tail_lse"):  # tail_lse at t = 0 is l / 1e-6: relative
                a, b = np.array(got.pop(key)), np.array(want.pop(key))
                assert np.all(np.abs(a - b) <= TOL * np.maximum(1, np.abs(b))), f"sampling {key} differ"
        assert got == want, f"{job['kind']} view of {job['text'][:30]!r}: JavaScript's data differs from gpt2lib.viz's"
    print(f"[PASS] viewdata.js: the data of {len(jobs)} attention, token and sampling views equals gpt2lib.viz's")


def test_bad_input_errors(node_run):
    out, _ = node_run({"bad": True})
    assert "exceed the model's context of 256" in out["bad"]["long"]["error"]
    assert "outside the vocabulary" in out["bad"]["id"]["error"]
    assert "lack h.3.mlp.c_fc.bias" in out["bad"]["missing"]["error"] and "export_web_model" in out["bad"]["missing"]["error"]
    print("[PASS] engine.js: too many tokens, an unknown id and a missing tensor raise errors naming the fix")


def test_forward_time_for_64_tokens(node_run, tok):
    text = (GPT2_DIR.parent / "shakespeare" / "henry_iv_part_1.txt").read_text()[:2000]
    out, _ = node_run({"time": text})
    assert out["time"]["T"] == 64
    print(f"[PASS] engine.js: one forward pass of 64 tokens (with the next-token logits) takes "
          f"{out['time']['ms']:.0f} ms in node {subprocess.run([NODE, '--version'], capture_output=True, text=True).stdout.strip()}")
