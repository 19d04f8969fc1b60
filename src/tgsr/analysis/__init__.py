"""Analyses of grounded reasoning: does the model listen to what it cites?

- ``attention``: attention of generated tokens to the system/audio/question/output blocks,
  per layer and generation phase, aggregated layer by layer in bounded memory;
- ``behaviors``: Regions Explored, Audiology Verify, Consistency and grounding precision of
  an evaluation run (the paper's Table 3); ``judge``: the consistency judges;
- ``faithfulness``: answer flips when the cited audio is masked vs random audio;
- ``listening``: own vs swapped vs silent audio, side by side.

Importing this package is light; the submodules import torch when they need it.
"""

# The paper's audio-critical probe queries for the attention analysis.
PROBE_QUERIES: tuple[str, ...] = ("What is happening?", "What is the spoken text?", "What are they doing?")

__all__ = ["PROBE_QUERIES"]
