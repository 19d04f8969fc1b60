"""Prompt templates: Stage-1 STA (paper Fig. 2), grounded reasoning, zero-shot CoT, direct.

Every stage renders prompts through this module so that training and evaluation see the
same words. Messages use the chat format the model adapters accept: a user turn whose
content is ``[{"type": "audio"}, {"type": "text", "text": ...}]``.
"""

from __future__ import annotations

from typing import Literal, Sequence

from .records import LETTERS

PromptStyle = Literal["grounded", "cot", "direct"]

STA_QUESTION = "What is the timestamp of the following segment? {phrase}"
STA_ANSWER = "The segment {phrase} starts at {start:.2f} seconds and ends at {end:.2f} seconds."

GROUNDED_INSTRUCTION = (
    "Listen to the audio and reason step by step before answering. "
    "Whenever you use information from the audio, cite the segment it comes from as "
    '"From Xs to Ys" (for example: From 1.20s to 3.45s, the first speaker says ...). '
    "End with a last line of the form: Final answer: (x) <choice text>"
)
COT_INSTRUCTION = (
    "Listen to the audio and think step by step before answering. "
    "End with a last line of the form: Final answer: (x) <choice text>"
)
DIRECT_INSTRUCTION = "Answer with the letter and the text of the correct choice, in the form: (x) <choice text>"

INSTRUCTIONS: dict[str, str] = {"grounded": GROUNDED_INSTRUCTION, "cot": COT_INSTRUCTION, "direct": DIRECT_INSTRUCTION}

FINAL_ANSWER = "Final answer: ({letter}) {text}"


def sta_question(phrase: str) -> str:
    return STA_QUESTION.format(phrase=phrase.strip())


def sta_answer(phrase: str, start: float, end: float) -> str:
    return STA_ANSWER.format(phrase=phrase.strip(), start=start, end=end)


def format_choices(choices: Sequence[str]) -> str:
    if len(choices) > len(LETTERS):
        raise ValueError(f"at most {len(LETTERS)} choices are supported, got {len(choices)}")
    return "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices))


def reasoning_question(question: str, choices: Sequence[str], style: PromptStyle = "grounded") -> str:
    """The user text of a multiple-choice item: question, lettered choices, instruction."""
    if style not in INSTRUCTIONS:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {sorted(INSTRUCTIONS)}")
    return f"{question.strip()}\nChoices:\n{format_choices(choices)}\n{INSTRUCTIONS[style]}"


def final_answer_line(letter: str, choices: Sequence[str]) -> str:
    letter = letter.lower()
    return FINAL_ANSWER.format(letter=letter, text=choices[LETTERS.index(letter)])


def user_messages(text: str, system: str | None = None) -> list[dict]:
    """A one-turn conversation with the audio placed before the text."""
    messages: list[dict] = []
    if system:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": text}]})
    return messages


__all__ = [
    "PromptStyle", "STA_QUESTION", "STA_ANSWER", "INSTRUCTIONS", "sta_question", "sta_answer",
    "format_choices", "reasoning_question", "final_answer_line", "user_messages",
]
