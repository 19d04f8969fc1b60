"""Data for every stage: the synthetic spoken-dialogue corpus (``synth``) and its TTS engines."""
