"""The floor under every model: one device resolver, the training loop, LoRA wrapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tunesift.errors import TunesiftError
from tunesift.models.device import check_device, resolve_device
from tunesift.models.seeds import generator, run_scope
from tunesift.models.training import (
    OptimConfig,
    epoch_batches,
    lr_factor,
    step_batches,
    train_only,
    train_steps,
)

# ------------------------------------------------------------------------------------ devices


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_resolver_rules_without_a_gpu(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for asked in ("cuda", "cuda:1", "mps"):
        with pytest.raises(TunesiftError) as err:
            resolve_device(asked)
        msg = str(err.value)
        # one line, naming the Python parameter and never a CLI flag
        assert "\n" not in msg and msg.startswith("device ") and "--" not in msg
        assert repr(asked) in msg
    # the CLI words the same error with its flag, from the one mapping
    from tunesift.cli.errors import render_error

    with pytest.raises(TunesiftError) as err:
        resolve_device("cuda")
    assert render_error(err.value) == "--device 'cuda' was asked for, but torch sees no CUDA device"
    for bad in ("gpu", "cuda:x", "CPU", "", "cuda:"):
        with pytest.raises(TunesiftError, match=r"^device must be 'auto', 'cpu', 'cuda'"):
            check_device(bad)


def test_resolver_checks_the_cuda_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(TunesiftError, match=r"device 'cuda:1' .* 1 CUDA device"):
        resolve_device("cuda:1")


def test_every_consumer_uses_the_one_resolver(no_gpu):
    """Sinkhorn, the sentence encoder and both evaluation modes share the rules (before, one of
    them passed 'cuda:1' through to torch and another rejected 'mps' outright)."""
    from tunesift.evaluate.causal import CausalConfig
    from tunesift.evaluate.encoder import EncoderConfig
    from tunesift.features.sentence import SentenceEncoder
    from tunesift.ot.sinkhorn import sinkhorn

    x = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(TunesiftError, match=r"^device 'cuda:1' was asked for"):
        sinkhorn(x, x, 0.1, device="cuda:1")
    with pytest.raises(TunesiftError, match=r"^device 'cuda' was asked for"):
        _ = SentenceEncoder(device="cuda").batch_size
    EncoderConfig(device="mps").validate()  # spelled right; resolving it is the run's business
    CausalConfig(device="cuda:2").validate()
    for cfg in (EncoderConfig(device="gpu"), CausalConfig(device="gpu")):
        with pytest.raises(TunesiftError, match=r"^device must be"):
            cfg.validate()


# --------------------------------------------------------------------------------- training


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 8)
        self.drop = nn.Dropout(0.3)
        self.b = nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.drop(torch.relu(self.a(x))))


X = torch.tensor(np.random.default_rng(0).normal(size=(20, 4)), dtype=torch.float32)
Y = X.sum(1, keepdim=True)


def _fit(seed: int, optim: OptimConfig) -> tuple[list[float], Net]:
    net = Net()
    batches = epoch_batches(len(X), 6, 3, generator(seed, 1))
    losses = train_steps(
        net,
        batches,
        lambda idx: (X[idx], Y[idx]),
        lambda m, x, y: nn.functional.mse_loss(m(x), y),
        optim,
        seed=seed,
    )
    return losses, net


def test_training_loop_is_a_function_of_its_seed():
    optim = OptimConfig.warmup_linear(1e-2, 12, 0.25, weight_decay=0.01)
    a, net_a = _fit(3, optim)
    b, net_b = _fit(3, optim)
    c, _ = _fit(4, optim)
    assert len(a) == 12  # 3 passes of 20 items in batches of 6: the partial batch is kept
    assert a == b and all(
        torch.equal(p, q) for p, q in zip(net_a.parameters(), net_b.parameters(), strict=True)
    )
    assert a != c  # another seed: another batch order and other dropout masks
    assert a[-1] < a[0]


def test_schedules_and_batching():
    # BERT's: warm-up, then linear decay to zero; GradEx's: warm-up, then constant
    assert [lr_factor(s, 4, 2) for s in range(4)] == [0.5, 1.0, 1.0, 0.5]
    assert [lr_factor(s, 4, 0) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert [lr_factor(s, 4, 2, "constant") for s in range(4)] == [0.5, 1.0, 1.0, 1.0]
    assert OptimConfig.warmup_linear(1.0, 100, 0.06).warmup_steps == 6
    with pytest.raises(TunesiftError, match="decay must be"):
        OptimConfig(1.0, decay="cosine")
    with pytest.raises(TunesiftError, match="lr must be positive"):
        OptimConfig(0.0)
    epochs = epoch_batches(5, 2, 2, generator(0, 1))
    assert [len(b) for b in epochs] == [2, 2, 1, 2, 2, 1]
    assert sorted(sum(epochs[:3], [])) == list(range(5))
    steps = step_batches(5, 2, 4, np.random.default_rng(0))
    assert [len(b) for b in steps] == [2, 2, 2, 2]  # the third batch straddles two passes
    assert sorted(sum(steps[:2], []) + steps[2][:1]) == list(range(5))


def test_a_loss_that_is_not_finite_stops_the_loop():
    net = Net()
    with pytest.raises(TunesiftError, match=r"^toy: the loss became nan"):
        train_steps(net, [[0]], lambda idx: (X[idx],), lambda m, x: m(x).sum() * float("nan"),
                    OptimConfig(1e-3), seed=0, desc="toy")  # fmt: skip


def test_train_only_freezes_the_rest_and_restores_the_flags():
    net = Net()
    net.b.bias.requires_grad_(False)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    with train_only(net, ["a.weight"]):
        assert [n for n, p in net.named_parameters() if p.requires_grad] == ["a.weight"]
        train_steps(net, [[0, 1, 2]], lambda idx: (X[idx], Y[idx]),
                    lambda m, x, y: nn.functional.mse_loss(m(x), y), OptimConfig(1e-2), seed=0)  # fmt: skip
    moved = [n for n, p in net.named_parameters() if not torch.equal(p, before[n])]
    assert moved == ["a.weight"]
    assert not net.b.bias.requires_grad and net.a.bias.requires_grad


def test_run_scope_leaves_the_callers_rng_and_threads_alone():
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with run_scope(1, torch.device("cpu")):
        assert torch.get_num_threads() == 1
        torch.manual_seed(0)
        torch.rand(5)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


def test_gradex_training_runs_on_the_shared_loop():
    """tasks.lm.train is train_steps with GradEx's batching: its numbers follow from it."""
    from tunesift.models.training import train_steps as loop
    from tunesift.tasks import ByteTokenizer, TinyLM, TinyLMConfig, TrainConfig
    from tunesift.tasks.lm import collate, lm_loss, train

    tiny = TinyLMConfig(d_model=16, n_layers=1, n_heads=2, d_ff=32, context=24)
    tok = ByteTokenizer()
    ex = [tok.encode(t, max_length=24) for t in ["ab ab", "abab ab", "xy", "q z q", "ab"]]
    cfg = TrainConfig(steps=4, batch_size=2, lr=3e-3, weight_decay=0.1, warmup=0.5)
    ours = train(TinyLM(tiny), ex, cfg, seed=5)
    model = TinyLM(tiny)
    batches = step_batches(len(ex), 2, 4, np.random.default_rng([5, 0x7EA]))
    optim = OptimConfig(3e-3, 0.1, warmup_steps=2, decay="constant", decay_matrices_only=False)
    theirs = loop(model, batches, lambda idx: collate([ex[i] for i in idx]), lm_loss, optim, seed=5)
    assert ours == theirs


# ------------------------------------------------------------------------------------- LoRA


@pytest.fixture(scope="module")
def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def test_lora_wrapping_freezes_the_base(tiny_llama):
    import copy

    from tunesift.models.lora import LoRASpec, trainable_count, wrap_lora
    from tunesift.models.objectives import causal_lm_batch, causal_lm_loss

    base = copy.deepcopy(tiny_llama)
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    model = wrap_lora(base, LoRASpec(r=2, alpha=4, dropout=0.0), seed=1)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert any("q_proj" in n for n in names) and any("v_proj" in n for n in names)
    # r=2 on q_proj (16 -> 16) and v_proj (16 -> 8): A is r x in, B is out x r
    assert trainable_count(model) == 2 * (16 + 16) + 2 * (16 + 8)
    rows = [[1, 2, 3, 4, 5], [6, 7, 8]]
    train_steps(model, [[0, 1]] * 3, lambda idx: causal_lm_batch([rows[i] for i in idx], 0),
                causal_lm_loss, OptimConfig(1e-2), seed=0)  # fmt: skip
    frozen = {n.replace(".base_layer", ""): p for n, p in model.get_base_model().named_parameters()
              if "lora_" not in n}  # fmt: skip
    assert frozen.keys() == before.keys()
    for name, p in before.items():
        assert torch.equal(frozen[name], p), name  # the base never moved
    # the adapters' initial values come from the seed alone
    a1 = wrap_lora(copy.deepcopy(tiny_llama), LoRASpec(r=2), seed=7)
    a2 = wrap_lora(copy.deepcopy(tiny_llama), LoRASpec(r=2), seed=7)
    a3 = wrap_lora(copy.deepcopy(tiny_llama), LoRASpec(r=2), seed=8)
    sd1, sd2, sd3 = (dict(m.named_parameters()) for m in (a1, a2, a3))
    lora_a = [n for n in sd1 if "lora_A" in n]
    assert all(torch.equal(sd1[n], sd2[n]) for n in lora_a)
    assert not all(torch.equal(sd1[n], sd3[n]) for n in lora_a)


def test_lora_refuses_a_layer_the_model_lacks(tiny_llama):
    import copy

    from tunesift.models.lora import LoRASpec, wrap_lora

    with pytest.raises(TunesiftError, match="no linear layer named 'c_attn'"):
        wrap_lora(copy.deepcopy(tiny_llama), LoRASpec(target_modules=("c_attn",)), seed=0)
    with pytest.raises(TunesiftError, match="lora_r must be at least 1"):
        LoRASpec(r=0).validate()


def test_minilm_from_a_local_copy_named_by_the_environment(tmp_path, monkeypatch):
    from tunesift.models.loaders import MINILM_ENV, convert_gguf_causal_lm, minilm_path

    monkeypatch.setenv(MINILM_ENV, str(tmp_path))
    with pytest.raises(TunesiftError, match="not a model folder"):
        minilm_path()
    (tmp_path / "config.json").write_text("{}")
    assert minilm_path() == tmp_path
    monkeypatch.delenv(MINILM_ENV)
    assert minilm_path() != tmp_path and (minilm_path() / "config.json").is_file()
    with pytest.raises(TunesiftError, match="no GGUF file"):
        convert_gguf_causal_lm(tmp_path / "absent.gguf", tmp_path / "out")
