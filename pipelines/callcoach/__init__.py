"""callcoach: nightly coaching of contact-centre calls.

Layers (a module imports only from layers below it):
  1. value types, no I/O: transcript, report, audio, storage
  2. stages: models, speech/, coaching/, reports, tables
  3. the run: planning (no Ray), stages/ (the Ray graph: decode -> transcribe -> score),
     commit, summary, wired together by flow; the only modules moving bytes between
     storage and stages
  4. faces: cli, jobs/
"""

__version__ = "0.1.0"
