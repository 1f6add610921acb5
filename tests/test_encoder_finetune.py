"""The fine-tuned sentence encoder: trained on the act corpus (scripts/finetune_encoder.py),
carried in the act model artefact (acts.npz "enc.<name>"), and used by every reader of an
artefact that has one.  The fine-tune runs for real here (torch on CPU), on a small slice of
the real act corpus and a few steps, so the test stays short."""
from __future__ import annotations

import json

import numpy as np
import pytest

from callcoach.coaching.acts import ENCODER_PREFIX, ActModelError, load_act_model, model_arrays, save_act_model
from callcoach.coaching.features import MiniLMEncoder, get_encoder, sentence_states
from callcoach.transcript import Transcript, Turn

pytest.importorskip("torch")
pytest.importorskip("transformers")

from scripts import coaching_data as data  # noqa: E402
from scripts.finetune_encoder import corpus_rows, finetune  # noqa: E402


@pytest.fixture(scope="module")
def tuned():
    """Top-layer weights fine-tuned for a few steps on 200 utterances of the act corpus."""
    corpus = data.load_corpus()[:200]
    texts, Y = corpus_rows(corpus)
    return texts, Y, finetune(texts, Y, layers=1, epochs=3, log=lambda *_: None)


def test_fine_tune_trains_only_the_top_layers_deterministically(tuned):
    texts, Y, w = tuned
    base = get_encoder()
    assert w and all(k.startswith("encoder.layer.5.") for k in w)
    assert set(w) == {k for k in base.W if k.startswith("encoder.layer.5.")}
    # stored as float16 in the artefact: the weights are already float16 values
    assert all(np.array_equal(v, v.astype(np.float16).astype(np.float32)) for v in w.values())
    # (against the shipped weights at the same float16 precision: rounding alone moves nothing)
    moved = [k for k in w if not np.array_equal(w[k], base.W[k].astype(np.float16).astype(np.float32))]
    assert len(moved) > len(w) // 2, "the fine-tune changed (almost) nothing"
    again = finetune(texts, Y, layers=1, epochs=3, log=lambda *_: None)
    assert all(np.array_equal(w[k], again[k]) for k in w)


def test_fine_tune_refuses_bad_input():
    with pytest.raises(ValueError):
        finetune([], np.zeros((0, 3), np.float32))
    with pytest.raises(ValueError):
        finetune(["a"], np.zeros((1, 3), np.float32), layers=7)


def test_artefact_carries_the_encoder_and_its_readers_use_it(tmp_path, tuned):
    _t, _y, w = tuned
    m = load_act_model()
    heads = {k: v for k, v in model_arrays(m).items() if not k.startswith(ENCODER_PREFIX)}
    plain = save_act_model(tmp_path / "plain", human_version="t", labels=m.labels, arrays=heads, meta={})
    arrays = {**heads, **{ENCODER_PREFIX + k: v for k, v in w.items()}}
    a = save_act_model(tmp_path / "a", human_version="t", labels=m.labels, arrays=arrays, meta={})
    assert not plain.encoder and set(a.encoder) == set(w)
    assert a.version != plain.version                       # the checksum covers the encoder
    assert all(np.array_equal(a.encoder[k], w[k]) for k in w)
    z = np.load(tmp_path / "a" / "acts.npz")
    assert all(z[ENCODER_PREFIX + k].dtype == np.float16 for k in w)
    # a reader of the artefact embeds with its encoder; one without gets the shipped one
    enc = get_encoder(a)
    assert enc is get_encoder(a) and enc is not get_encoder(plain) and get_encoder(plain) is get_encoder()
    assert enc.model_sha != get_encoder().model_sha
    tr = Transcript(call_id="c", duration_s=4.0, turns=(
        Turn(speaker="agent", start=0.0, end=2.0, text="I'm putting you through to our billing team now."),
        Turn(speaker="customer", start=2.0, end=4.0, text="Alright, though I rang about the same fault on Monday.")))
    st_a = sentence_states([tr], act_model=a)[0]
    st_p = sentence_states([tr], act_model=plain)[0]
    norms = st_a["seg"]["norm"]
    assert np.allclose(st_a["emb"], enc.encode(norms), atol=1e-5)
    assert np.allclose(st_p["emb"], get_encoder().encode(norms), atol=1e-5)
    assert np.abs(st_a["emb"] - st_p["emb"]).max() > 1e-4
    # acts.json names the version that covers the encoder weights
    doc = json.loads((tmp_path / "a" / "acts.json").read_text())
    assert doc["version"] == a.version


def test_encoder_weights_that_do_not_fit_are_refused(tmp_path):
    base = get_encoder()
    with pytest.raises(ValueError, match="do not fit"):
        base.with_weights({"encoder.layer.9.output.dense.weight": np.zeros((384, 1536), np.float32)})
    with pytest.raises(ValueError, match="do not fit"):
        base.with_weights({"encoder.layer.5.output.dense.weight": np.zeros((3, 3), np.float32)})
    m = load_act_model()
    with pytest.raises(ActModelError, match="encoder"):
        save_act_model(tmp_path / "x", human_version="t", labels=m.labels,
                       arrays={**model_arrays(m), ENCODER_PREFIX + "pooler.dense.weight": np.zeros((2, 2))}, meta={})
    assert isinstance(base, MiniLMEncoder)
