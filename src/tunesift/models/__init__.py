"""The floor every model-based part stands on: devices, seeds, loaders, LoRA and one training loop.

- ``device``: ``resolve_device``, the one resolver of ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"``;
- ``seeds``: seeded ``torch.Generator`` streams derived from one seed, and a scope that sets torch's
  CPU threads and forks its global RNGs so a run leaves the caller's state as it found it;
- ``training``: AdamW with warm-up then linear decay (or constant), gradient clipping, seeded
  batching (epochs or steps), and ``train_steps``, the loop every model trains with;
- ``lora``: ``LoRASpec`` and ``wrap_lora`` (peft adapters, the base frozen);
- ``objectives``: BERT's masked-LM corruption and loss, next-token cross-entropy;
- ``classifier``: ``EncoderClassifier``, a pooled encoder with a linear head;
- ``loaders``: MiniLM (masked-LM and bare encoder), SmolLM2 (GGUF -> float32 cache, tokenizer
  check), any local causal LM, and a ``TinyLM`` from a state file;
- ``tinylm``: ``TinyLM``, the byte-level causal transformer GradEx's tests train from scratch.

Importing this package imports no torch; each module does when it is imported.
"""
