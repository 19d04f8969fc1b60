"""One question about one clip: the model's reasoning, its cited spans and its answer.

``tgsr ask MODEL AUDIO "question" --choice ... [--html out.html]`` is a thin wrapper.
The prompt is the same one training and evaluation use (``tgsr.prompts``), so a checkpoint
answers here exactly as it answered in ``tgsr eval run``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .errors import TgsrError


@dataclass
class AskResult:
    model: str
    audio: str
    question: str
    choices: list[str]
    prompt: str
    completion: str
    letter: str | None
    choice_text: str | None
    reason: str | None
    spans: list = field(default_factory=list)

    def example(self, audio_ref: str | None = None) -> dict:
        """The viewer's example dict for this answer."""
        return {"id": Path(self.audio).name, "audio": audio_ref or self.audio, "question": self.question,
                "choices": self.choices, "answer": "",
                "traces": [{"label": "answer", "model": self.model, "completion": self.completion,
                            "pred_letter": self.letter, "correct": None}]}

    def write_html(self, path: str | os.PathLike) -> Path:
        """The single-example viewer; the audio is embedded when short, else linked relatively."""
        from .report.viewer import write_viewer

        path = Path(path)
        return write_viewer(path, self.example(str(Path(self.audio).resolve())),
                            title="tgsr ask: " + Path(self.audio).name)


def ask(model_path: str, audio_path: str, question: str, choices: Sequence[str], *,
        style: str = "grounded", max_new_tokens: int = 160, sample: bool = False, seed: int = 0,
        lm=None, device: str = "auto", dtype: str | None = None) -> AskResult:
    """Run ``model_path`` (a folder or hub id, placed by ``device``/``dtype`` as in
    ``tgsr.models.placement``; or an already loaded adapter ``lm``) on one question."""
    import torch

    from .answers import extract_choice
    from .audio import load_audio
    from .prompts import reasoning_question, user_messages
    from .spans import find_spans

    choices = [str(c) for c in choices]
    if len(choices) < 2:
        raise TgsrError("ask: at least two choices are needed")
    if lm is None:
        from .models import load_model

        lm = load_model(model_path, device=device, dtype=dtype)
    audio = load_audio(audio_path)
    prompt = reasoning_question(question, choices, style=style)
    torch.manual_seed(seed)
    inputs = lm.build_inputs([audio], [user_messages(prompt)])
    gen = lm.generate(inputs, max_new_tokens=max_new_tokens, do_sample=sample,
                      temperature=0.8 if sample else 1.0)
    text = gen.texts[0]
    ext = extract_choice(text, choices)
    return AskResult(model=str(model_path), audio=str(audio_path), question=question, choices=choices,
                     prompt=prompt, completion=text, letter=ext.letter, choice_text=ext.text,
                     reason=ext.reason, spans=list(find_spans(text)))


__all__ = ["AskResult", "ask"]
