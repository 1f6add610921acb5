"""Wiring of the ``pyannote`` diarization backend, with UNTRAINED checkpoints.

Real pyannote pipeline weights (community-1 / 3.1) come from the model hub, which is not
reachable here.  This test therefore builds SMALL, RANDOMLY INITIALISED checkpoints
itself, in exactly the layout ``Pipeline.from_pretrained(<local dir>)`` expects:

    <dir>/config.yaml                      pipeline: SpeakerDiarization, $model/... refs
    <dir>/segmentation/pytorch_model.bin   PyanNet, powerset (3 speakers, max 2 at once)
    <dir>/embedding/pytorch_model.bin      XVectorMFCC (pyannote.audio.models.embedding)
    <dir>/plda/xvec_transform.npz, plda.npz  (identity-like PLDA for VBx clustering)

and runs the pipeline through our ``make_diarizer("pyannote", model_dir=...)`` on a few
seconds of audio.  The outputs of untrained models are meaningless: this checks the
WIRING only (local loading without network, in-memory waveform input, device move,
num_speakers passing, regular + exclusive outputs converted to well-formed segments),
not diarization quality.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

torch = pytest.importorskip("torch")
pytest.importorskip("pyannote.audio")

from callcoach.audio import SAMPLE_RATE, Audio  # noqa: E402
from callcoach.speech.diarize import make_diarizer  # noqa: E402


def _save_model(model, path: Path) -> None:
    """Save a pyannote Model the way Model.from_pretrained loads it (lightning checkpoint)."""
    import lightning

    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)


def build_pipeline_dir(root: Path, *, clustering: str = "VBxClustering") -> Path:
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import XVectorMFCC
    from pyannote.audio.models.segmentation import PyanNet

    torch.manual_seed(0)
    seg = PyanNet(sincnet={"stride": 10},
                  lstm={"hidden_size": 16, "num_layers": 1, "bidirectional": True,
                        "monolithic": True, "dropout": 0.0},
                  linear={"hidden_size": 16, "num_layers": 1})
    seg.specifications = Specifications(
        problem=Problem.MONO_LABEL_CLASSIFICATION, resolution=Resolution.FRAME,
        duration=5.0, min_duration=5.0, warm_up=(0.0, 0.0),
        classes=["speaker#1", "speaker#2", "speaker#3"], powerset_max_classes=2,
        permutation_invariant=True)
    seg.build()
    _save_model(seg, root / "segmentation" / "pytorch_model.bin")

    dim = 32
    emb = XVectorMFCC(dimension=dim)
    emb.specifications = Specifications(
        problem=Problem.REPRESENTATION, resolution=Resolution.CHUNK, duration=5.0,
        min_duration=0.5, classes=None)
    _save_model(emb, root / "embedding" / "pytorch_model.bin")

    # PLDA for VBx: centring + LDA to `dim` dims, then a unit within-class PLDA
    rng = np.random.default_rng(0)
    (root / "plda").mkdir(parents=True, exist_ok=True)
    np.savez(root / "plda" / "xvec_transform.npz", mean1=np.zeros(dim), mean2=np.zeros(dim),
             lda=np.linalg.qr(rng.standard_normal((dim, dim)))[0])
    np.savez(root / "plda" / "plda.npz", mu=np.zeros(dim), tr=np.eye(dim),
             psi=np.linspace(2.0, 0.1, dim))

    params = ({"threshold": 0.6, "Fa": 0.07, "Fb": 0.8} if clustering == "VBxClustering"
              else {"method": "centroid", "min_cluster_size": 2, "threshold": 0.7})
    (root / "config.yaml").write_text(f"""\
version: 4.0.0
pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: {clustering}
    segmentation: $model/segmentation
    embedding: $model/embedding
    plda: $model/plda
    segmentation_step: 0.5
    embedding_batch_size: 8
    segmentation_batch_size: 8
    embedding_exclude_overlap: true
params:
  segmentation:
    min_duration_off: 0.0
  clustering: {params}
""")
    return root


def two_tone_audio(seconds: float = 12.0) -> Audio:
    """Alternating 'voices' (two harmonic tones with noise) and pauses."""
    sr = SAMPLE_RATE
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(1)
    x = 0.005 * rng.standard_normal(len(t))
    for i, start in enumerate(np.arange(0.5, seconds - 1.5, 2.0)):
        f0 = 120.0 if i % 2 == 0 else 220.0
        sel = (t >= start) & (t < start + 1.6)
        x[sel] += sum(0.2 / h * np.sin(2 * np.pi * f0 * h * t[sel]) for h in range(1, 6))
    return Audio(x.astype(np.float32)[None], sr, sr, "pcm", "synthetic")


def check_segments(segs, duration: float) -> None:
    assert segs == sorted(segs, key=lambda s: (s.start, s.end, s.speaker))
    for s in segs:
        assert isinstance(s.speaker, str) and s.speaker
        assert 0.0 <= s.start < s.end <= duration + 0.05
    for spk in {s.speaker for s in segs}:
        mine = [s for s in segs if s.speaker == spk]
        for a, b in zip(mine, mine[1:]):
            assert a.end <= b.start


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


@pytest.mark.parametrize("clustering", ["VBxClustering", "AgglomerativeClustering"])
def test_pyannote_backend_wiring(tmp_path, clustering):
    model_dir = build_pipeline_dir(tmp_path / "pipeline", clustering=clustering)
    dia = make_diarizer("pyannote", model_dir=str(model_dir), device="cpu")
    assert dia.name == "pyannote"
    assert dia.version.startswith("pyannote:pyannote.audio-")

    audio = two_tone_audio()
    regular, exclusive = dia.diarize_both(audio)
    check_segments(regular, audio.duration_s)
    check_segments(exclusive, audio.duration_s)
    # exclusive output never has two speakers at once
    for a in exclusive:
        for b in exclusive:
            if a is not b and a.speaker != b.speaker:
                assert a.end <= b.start or b.end <= a.start
    # __call__ returns the regular (overlap-keeping) output (CPU inference is
    # deterministic); pyannote's own steps reach the hook, and nothing stays on the instance
    steps = []
    state = dict(vars(dia))
    assert dia(audio, hook=lambda step, value: steps.append(step)) == regular
    assert "segmentation" in steps, steps
    assert vars(dia) == state
    # num_speakers reaches the pipeline (untrained models: only an upper bound is certain)
    fixed = dia(audio, num_speakers=2)
    check_segments(fixed, audio.duration_s)
    assert len({s.speaker for s in fixed}) <= 2


def test_pyannote_backend_stereo_input_is_downmixed(tmp_path):
    model_dir = build_pipeline_dir(tmp_path / "pipeline", clustering="AgglomerativeClustering")
    dia = make_diarizer("pyannote", model_dir=str(model_dir), use_exclusive=True)
    mono = two_tone_audio(8.0)
    stereo = Audio(np.concatenate([mono.samples, mono.samples]), SAMPLE_RATE, 8000, "pcm", "s")
    segs = dia(stereo)
    check_segments(segs, stereo.duration_s)
    assert segs == dia.diarize_both(stereo)[1]      # use_exclusive: the exclusive output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_pyannote_backend_on_gpu(tmp_path):
    model_dir = build_pipeline_dir(tmp_path / "pipeline")
    dia = make_diarizer("pyannote", model_dir=str(model_dir), device="cuda")
    assert next(dia.pipeline._segmentation.model.parameters()).is_cuda
    audio = two_tone_audio()
    check_segments(dia(audio), audio.duration_s)


def test_pyannote_backend_needs_a_local_dir(tmp_path):
    with pytest.raises(ValueError):
        make_diarizer("pyannote")
    with pytest.raises(FileNotFoundError):
        make_diarizer("pyannote", model_dir=str(tmp_path / "missing"))
