"""Speech stage: voice activity detection and speaker diarization."""
