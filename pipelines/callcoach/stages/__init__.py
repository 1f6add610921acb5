"""The stages of the Ray graph, one module each, in the order a call goes through them:

    decode      CPU: read + decode the audio (ReadDecode); read an existing transcript
                (ImportTranscript) or a stored one (ReadTranscript) for Score
    transcribe  speech actors (GPU when configured): diarization + ASR + roles
    score       CPU actors, batches of calls: reports, ledger entries
    rows        the row every stage takes and returns (ROW and its Arrow schema)
"""

from __future__ import annotations

from ..storage import Store, open_store


def _as_store(where: str | Store) -> Store:
    """Stages get the output Store itself (so its settings travel with it; an S3Store
    pickles without its client) or, from older callers, a URI."""
    return open_store(where) if isinstance(where, str) else where
