"""Word timings by forced alignment with a wav2vec2 CTC model (WhisperX's method).

Used when ``ModelConfig.alignment`` names a model directory (a Hugging Face
``Wav2Vec2ForCTC`` checkpoint with its processor, e.g. WhisperX's English default
``WAV2VEC2_ASR_BASE_960H`` exported with ``save_pretrained``); otherwise the words keep
faster-whisper's cross-attention timings.

Per clip (one speaker region, from its own channel on stereo calls): the wav2vec2 model
gives per-frame character log-probabilities; the clip's words, as characters of the
model's alphabet with ``|`` between words, are aligned to them with WhisperX's trellis
and backtrack (``whisperx.alignment.get_trellis`` / ``backtrack`` / ``merge_repeats``);
a word's start and end are its first and last aligned character.  A word with no
character in the alphabet (digits on an English model, say) keeps its Whisper timing,
moved if needed to sit between its aligned neighbours; a clip the trellis cannot align
keeps Whisper's timings whole.

WhisperX's own ``align()`` is not called: it splits segments into sentences with NLTK's
punkt data, which it downloads at run time (nothing downloads at run time here).
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from ..audio import SAMPLE_RATE
from ..models import version_of
from ..transcript import Word

log = logging.getLogger(__name__)

SEPARATOR = "|"


class Aligner:
    """A wav2vec2 CTC model loaded once (one per speech actor)."""

    def __init__(self, model_dir: str, device: str = "cpu"):
        import torch
        from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

        if not os.path.isfile(os.path.join(model_dir, "config.json")):
            raise FileNotFoundError(f"no wav2vec2 alignment model (config.json) in {model_dir}")
        self.device = device
        processor = Wav2Vec2Processor.from_pretrained(model_dir, local_files_only=True)
        self.model = Wav2Vec2ForCTC.from_pretrained(model_dir, local_files_only=True).to(device).eval()
        vocab = processor.tokenizer.get_vocab()
        self.dictionary = {c.lower(): i for c, i in vocab.items()}
        # WhisperX's choice of the CTC blank: the pad token, else index 0
        self.blank = next((i for c, i in self.dictionary.items() if c in ("[pad]", "<pad>")), 0)
        self._torch = torch
        name = os.path.basename(os.path.normpath(model_dir))
        self.version = f"wav2vec2-ctc:{name}@{version_of(model_dir)}"

    def emission(self, samples: np.ndarray) -> np.ndarray:
        """Per-frame log-probabilities (frames x alphabet) of a 16 kHz clip."""
        torch = self._torch
        x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None].to(self.device)
        with torch.inference_mode():
            if len(samples) < 400:            # shorter than the feature encoder's receptive field
                x = torch.nn.functional.pad(x, (0, 400 - len(samples)))
            logits = self.model(x).logits
            return torch.log_softmax(logits, dim=-1)[0].float().cpu().numpy()

    def align(self, samples: np.ndarray, start: float, words: Sequence[Word]) -> list[Word]:
        """``words`` (call seconds) of the clip ``samples`` that starts at ``start``."""
        if not words or len(samples) == 0:
            return list(words)
        emission = self.emission(samples)
        return align_words(emission, len(samples) / SAMPLE_RATE, start, words,
                           self.dictionary, self.blank)


def align_words(emission: np.ndarray, clip_s: float, start: float, words: Sequence[Word],
                dictionary: dict[str, int], blank: int) -> list[Word]:
    """WhisperX's trellis alignment of ``words`` to ``emission`` (frames x alphabet, log
    probabilities) of a clip ``clip_s`` long starting at call second ``start``."""
    import torch
    from whisperx.alignment import backtrack, get_trellis, merge_repeats

    sep = dictionary.get(SEPARATOR)
    tokens: list[int] = []
    owner: list[int] = []            # word index of each token (-1: separator)
    for k, w in enumerate(words):
        chars = [c for c in w.w.lower() if c in dictionary and c != SEPARATOR]
        if not chars:
            continue
        if tokens and sep is not None:
            tokens.append(sep)
            owner.append(-1)
        tokens += [dictionary[c] for c in chars]
        owner += [k] * len(chars)
    frames = emission.shape[0]
    if not tokens or frames < len(tokens):
        return list(words)
    em = torch.from_numpy(np.ascontiguousarray(emission, dtype=np.float32))
    trellis = get_trellis(em, tokens, blank_id=blank)
    path = backtrack(trellis, em, tokens, blank_id=blank)
    if path is None:
        log.debug("alignment failed for a %.1f s clip: Whisper timings kept", clip_s)
        return list(words)
    ratio = clip_s / frames                      # seconds per emission frame
    spans: dict[int, list[float]] = {}
    for seg in merge_repeats(path, list(range(len(tokens)))):
        k = owner[seg.label]
        if k < 0:
            continue
        a, b = start + seg.start * ratio, start + seg.end * ratio
        if k in spans:
            spans[k] = [min(spans[k][0], a), max(spans[k][1], b)]
        else:
            spans[k] = [a, b]
    out: list[Word] = []
    for k, w in enumerate(words):
        if k in spans:
            a, b = spans[k]
        else:
            # unalignable (no character in the alphabet): Whisper's timing, kept between
            # the aligned words around it
            prev_end = out[-1].end if out else start
            nxt = next((spans[j][0] for j in range(k + 1, len(words)) if j in spans), None)
            a = max(w.start, prev_end)
            b = max(a, min(w.end, nxt) if nxt is not None else w.end)
        out.append(Word(w.w, round(float(a), 3), round(float(max(a, b)), 3), w.p))
    return out
