"""The text-only check: can the question and option texts alone pick the answer?

The baseline never hears the audio. Fit on the training split, it answers a test question
with the option whose text was most often the gold answer of that exact question in
training, backing off to how often the text was gold in the same question family, then to
the first option. If distractors come from the same pools as answers and letters are
balanced, it stays at chance (1 / number of options).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from ..records import QAExample


@dataclass
class TextBaselineResult:
    accuracy: float
    chance: float
    n: int
    per_task: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"accuracy": round(self.accuracy, 4), "chance": round(self.chance, 4), "n": self.n,
                "per_task": self.per_task}


class MostFrequentAnswerText:
    """Most frequent gold option text given the question (backing off to the question family)."""

    def fit(self, train: Iterable[QAExample]) -> "MostFrequentAnswerText":
        self.by_question: dict[str, Counter] = defaultdict(Counter)
        self.by_task: dict[str, Counter] = defaultdict(Counter)
        for ex in train:
            gold = ex.choices[ex.answer_index]
            self.by_question[ex.question][gold] += 1
            self.by_task[ex.task][gold] += 1
        return self

    def predict(self, ex: QAExample) -> int:
        q, t = self.by_question.get(ex.question, Counter()), self.by_task.get(ex.task, Counter())
        scores = [(q[c], t[c]) for c in ex.choices]
        best = max(scores)
        return scores.index(best)


def text_only_baseline(train: list[QAExample], test: list[QAExample]) -> TextBaselineResult:
    """Accuracy of :class:`MostFrequentAnswerText` on ``test`` after fitting on ``train``."""
    model = MostFrequentAnswerText().fit(train)
    hits, per_task = 0, defaultdict(lambda: [0, 0, 0.0])
    for ex in test:
        ok = model.predict(ex) == ex.answer_index
        hits += ok
        row = per_task[ex.task]
        row[0] += ok
        row[1] += 1
        row[2] += 1.0 / len(ex.choices)
    chance = sum(1.0 / len(ex.choices) for ex in test) / len(test) if test else 0.0
    return TextBaselineResult(
        accuracy=hits / len(test) if test else 0.0, chance=chance, n=len(test),
        per_task={t: {"accuracy": round(r[0] / r[1], 4), "chance": round(r[2] / r[1], 4), "n": r[1]}
                  for t, r in sorted(per_task.items())},
    )


__all__ = ["MostFrequentAnswerText", "TextBaselineResult", "text_only_baseline"]
