"""Answer extraction: which lettered choice a completion picks.

Used by the ``answer`` reward (paper Eq. 1) and by evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

from .records import LETTERS

__all__ = ["Extraction", "AnswerLine", "answer_line", "extract_choice", "completion_text", "LETTERS"]


# Markdown decoration models wrap answers in: **Final answer: (b)**, `B`, > quote, # heading.
_DECOR = re.compile(r"[*_`#>\u200b]+")
_KEYWORD = re.compile(
    r"\b(?:final\s{1,3})?(?:answer|option|choice)(?:\s{1,3}is)?\s{0,3}[:\-\u2013=]?\s{0,3}",
    re.IGNORECASE)
_PAREN_LETTER = re.compile(r"[(\[]\s?([a-z])\s?[)\]]", re.IGNORECASE)
_LETTER_ALONE = re.compile(r"^[(\[]?([a-z])[.):\]]?$", re.IGNORECASE)
_LETTER_DELIMITED = re.compile(r"^(?:[(\[]([a-z])[)\]]|([a-z])[.):])(?:\s|$)", re.IGNORECASE)
_LETTER_WORD = re.compile(r"^([a-z])\s+(.+)$", re.IGNORECASE)
_PUNCT_EDGES = " \t.,;:!?\"'\u201c\u201d\u2018\u2019()[]"


@dataclass(frozen=True)
class Extraction:
    """The choice a completion picked: lower-case ``letter`` and its ``text``, or a ``reason``."""

    letter: str | None
    text: str | None
    reason: str | None = None

    @property
    def found(self) -> bool:
        return self.letter is not None


def completion_text(completion: Any) -> str:
    """Plain text of a completion given as a string, bytes, or a list of chat messages.

    Chat messages are dicts with ``content`` as a string or a list of parts
    (``{"type": "text", "text": ...}``); only assistant text is kept when roles are given.
    Anything else gives ``""``.
    """
    if completion is None:
        return ""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, (bytes, bytearray)):
        return bytes(completion).decode("utf-8", errors="replace")
    if isinstance(completion, dict):
        completion = [completion]
    if isinstance(completion, (list, tuple)):
        parts: list[str] = []
        for msg in completion:
            if isinstance(msg, str):
                parts.append(msg)
                continue
            if not isinstance(msg, dict):
                continue
            if msg.get("role") not in (None, "assistant"):
                continue
            content = msg.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, (list, tuple)):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        parts.append(part["text"])
                    elif isinstance(part, str):
                        parts.append(part)
        return "\n".join(parts)
    return ""


@dataclass(frozen=True)
class AnswerLine:
    """The final answer line of a completion: where it sits and what it says."""
    start: int  # character offset of the line in the completion
    end: int  # offset just past the line (before its newline)
    text: str  # the line without markdown decoration and edge spaces

    @property
    def states_answer(self) -> bool:
        """Whether the line reads as an answer: it names "answer" or a choice letter like "(b)"."""
        return bool(_STATES_ANSWER.search(self.text))


_STATES_ANSWER = re.compile(r"answer|\([a-z]\)", re.IGNORECASE)


def answer_line(text: str) -> AnswerLine | None:
    """The last line of ``text`` that is not blank once markdown decoration is removed, or None.

    The one definition of the final answer line: the answer reward, evaluation, the exports,
    the attention phases and Audiology Verify all read this line.
    """
    end = len(text)
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = _DECOR.sub("", text[start:end]).strip()
        if line:
            return AnswerLine(start, end, line)
        end = start - 1
    return None


def _norm(s: str) -> str:
    return " ".join(s.lower().split()).strip(_PUNCT_EDGES)


def _choice_by_text(rest: str, choices: Sequence[str]) -> int | None:
    key = _norm(rest)
    if not key:
        return None
    hits = [i for i, c in enumerate(choices) if _norm(str(c)) == key]
    return hits[0] if len(set(_norm(str(choices[i])) for i in hits)) == 1 else None


def _after_keyword(rest: str, choices: Sequence[str]) -> tuple[str | None, str | None]:
    """Letter from the text after "answer:"; (letter, None) or (None, why)."""
    m = _PAREN_LETTER.match(rest)
    if m:
        return m.group(1).lower(), None
    m = _LETTER_ALONE.match(rest) or _LETTER_DELIMITED.match(rest)
    if m:
        return (m.group(1) or m.group(2)).lower(), None
    m = _LETTER_WORD.match(rest)
    if m:
        # "Answer: B two speakers" is the letter only when the words are choice B's text;
        # "Answer: a dog" is a letter only if choice (a) reads "dog".
        idx = LETTERS.find(m.group(1).lower())
        if 0 <= idx < len(choices) and _norm(m.group(2)) == _norm(str(choices[idx])):
            return m.group(1).lower(), None
    idx = _choice_by_text(rest, choices)
    if idx is not None:
        return LETTERS[idx], None
    return None, "no choice letter after the answer keyword"


def _letter_from_line(line: str, choices: Sequence[str]) -> tuple[str | None, str | None]:
    kws = list(_KEYWORD.finditer(line))
    for kw in kws:  # first keyword that is followed by a choice wins
        letter, _ = _after_keyword(line[kw.end():].strip(), choices)
        if letter is not None:
            return letter, None
    found = {g.lower() for g in _PAREN_LETTER.findall(line)}
    m = _LETTER_ALONE.match(line) or _LETTER_DELIMITED.match(line)
    if m:
        found.add((m.group(1) or m.group(2)).lower())
    if len(found) == 1:
        return found.pop(), None
    if len(found) > 1:
        return None, f"ambiguous: several choice letters on the last line ({', '.join(sorted(found))})"
    idx = _choice_by_text(line, choices)
    if idx is None and kws:
        idx = _choice_by_text(line[kws[-1].end():], choices)
    if idx is not None:
        return LETTERS[idx], None
    return None, "no choice letter or choice text on the last line"


def extract_choice(completion: Any, choices: Sequence[str] | None) -> Extraction:
    """The lettered choice that ``completion`` picks on its last non-empty line.

    Rule (tried in order on the last non-empty line, markdown ``*_`#>`` removed,
    case-insensitive):

    1. After the last "answer"/"final answer"/"option"/"choice" keyword (optionally "is", ":"):
       a bracketed letter "(b)"/"[b]"; a letter alone or followed by ``.``, ``)`` or ``:``
       ("Answer: B", "Answer: B."); a bare letter followed by words only when those words
       are that choice's text ("Answer: b two speakers"); or the text of a choice.
    2. The whole line is a letter, optionally bracketed or followed by ``.``/``)``/``:``
       ("B", "B.", "(b)"), or starts with one followed by a space ("B. two speakers").
    3. Exactly one distinct bracketed letter "(x)" anywhere on the line ("I pick (c) here").
       Several distinct letters from rules 2-3 are ambiguous and yield nothing
       ("(b) and then (c)").
    4. The line (or the part after the keyword) equals one choice's text, ignoring case,
       spacing and edge punctuation.

    A single letter inside running text is never taken on its own: the article in
    "a dog" or the pronoun in "I think so" is not a choice letter. A letter beyond the
    number of choices yields nothing (reason says so). Letters past (d) work (MMAU has
    5- and 8-option items). With ``choices`` empty or None any letter a-z is accepted and
    ``text`` is None.
    """
    choices = list(choices or [])
    text = completion_text(completion)
    if not text.strip():
        return Extraction(None, None, "empty completion")
    line = answer_line(text)
    if line is None:
        return Extraction(None, None, "empty completion")
    letter, why = _letter_from_line(line.text, choices)
    if letter is None:
        return Extraction(None, None, why)
    idx = LETTERS.index(letter)
    if choices and idx >= len(choices):
        return Extraction(None, None, f"letter ({letter}) is beyond the {len(choices)} choices")
    return Extraction(letter, str(choices[idx]) if choices else None, None)
