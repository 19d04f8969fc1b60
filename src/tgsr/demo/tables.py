"""The demo's result tables: one dataclass per table, one named field per column.

A row is built by field name, and ``Table.to_dict`` writes each row of ``results.json`` as a
mapping from column heading to value (what ``tgsr.report.html.table_html`` renders), so nothing
that reads a table depends on the position of a column.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def column(heading: str) -> Any:
    """A field whose column heading differs from its name."""
    return field(metadata={"column": heading})


@dataclass
class Row:
    """Base of the table rows: ``cells()`` maps column headings to values, in column order."""

    @classmethod
    def headings(cls) -> list[str]:
        return [f.metadata.get("column", f.name) for f in dataclasses.fields(cls)]

    def cells(self) -> dict[str, Any]:
        return {f.metadata.get("column", f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass
class Table:
    id: str
    title: str
    rows: list[Row]
    row_type: type[Row]
    caption: str = ""

    @property
    def columns(self) -> list[str]:
        if self.rows:
            return list(self.rows[0].cells())
        return self.row_type.headings()

    def to_dict(self) -> dict:
        for r in self.rows:
            if not isinstance(r, self.row_type):
                raise TypeError(f"table {self.id!r}: a {type(r).__name__} row in a table of {self.row_type.__name__}")
        out = {"id": self.id, "title": self.title, "columns": self.columns, "rows": [r.cells() for r in self.rows]}
        if self.caption:
            out["caption"] = self.caption
        return out


@dataclass
class AccuracyRow(Row):
    """Table 2 analogue: one model under the three listening conditions."""

    model: str
    recipe: str
    prompt: str
    own: float | None
    n: int | None = column("n")
    no_answer: float | None = column("no answer")
    # the controls, on the first n_controls of the same items
    own_on_controls: float | None = column("own (control items)")
    swapped: float | None = column("swapped")
    silence: float | None = column("silence")
    own_minus_swapped: float | None = column("own - swapped")
    p_own_vs_swapped: float | None = column("McNemar p")
    n_controls: int | None = column("n controls")
    note: str = column("note")


@dataclass
class TaskAccuracyRow(Row):
    """Accuracy by question family: one column per family."""

    model: str
    by_task: dict[str, float | None]

    def cells(self) -> dict[str, Any]:
        return {"model": self.model, **self.by_task}


@dataclass
class TimestampRow(Row):
    """Table 1 analogue: turn-level timestamp alignment of one model."""

    model: str
    mean_iou: float = column("mean IoU")
    iou_at_07: float = column("IoU >= 0.7")
    sed_f1: float = column("SED-F1")
    no_span: int | None = column("no span")
    n: int | None = column("n")


@dataclass
class CitationRow(Row):
    model: str
    citations: float = column("citations / answer")
    distinct_regions: float = column("distinct regions / answer")
    answers_citing: float = column("answers citing")


@dataclass
class CitationFollowingRow(Row):
    """Does the answer read its citation? (``tgsr.analysis.citation_following``) One model, one split."""

    model: str
    split: str
    follow_rate: float | None = column("follows counterfactual")
    follow_chance: float | None = column("chance")
    follow_pvalue: float | None = column("p (> chance)")
    accuracy_own: float | None = column("acc. own reasoning")
    accuracy_gold: float | None = column("acc. gold citation")
    gold_gain: float | None = column("gold - own")
    gain_pvalue: float | None = column("McNemar p")
    probed: int = column("probed")
    items: int = column("items")
    passed: bool = column("gate passed")


@dataclass
class BehaviourRow(Row):
    """Table 3 analogue."""

    model: str
    n: int | None
    accuracy: float | None
    regions_explored: float | None = column("regions explored")
    consistency: float | None = column("consistency")
    grounding_iou: float | None = column("grounding IoU")
    n_cited: int | None = column("n cited")


@dataclass
class AttentionRow(Row):
    """Table 4 analogue: attention mass on the audio block, overall and by output phase."""

    model: str
    overall: float | None = column("audio attn. overall")
    reasoning: float | None = column("reasoning")
    timestamp: float | None = column("timestamp")
    answer: float | None = column("answer")
    # attention mass inside the cited span relative to the span's share of the audio tokens
    # (1 = no more than elsewhere in the audio), all generated tokens and the answer's
    span_ratio: float | None = column("cited-span ratio")
    span_ratio_answer: float | None = column("cited-span ratio (answer)")
    items_citing: int | None = column("items citing")
    items: int | None = column("items")
    failed: int | None = column("failed")


@dataclass
class SeedRow(Row):
    """One GRPO training seed of an arm against the arm's start policy, on the same test items."""

    model: str
    seed: int = column("training seed")
    accuracy_a: float = column("own")
    accuracy_b: float = column("start policy")
    difference: float = column("GRPO - start")
    low: float = column("95% low")
    high: float = column("95% high")
    only_a: int = column("only GRPO right")
    only_b: int = column("only start right")
    p_mcnemar: float = column("McNemar p")
    n: int = column("n")


def paired_fields(c: dict) -> dict:
    """The fields ``ContrastRow`` and ``SeedRow`` share, from a ``tgsr.analysis.stats.contrast_runs`` result."""
    return {"accuracy_a": c["accuracy_a"], "accuracy_b": c["accuracy_b"], "difference": c["interval"]["difference"],
            "low": c["interval"]["low"], "high": c["interval"]["high"], "only_a": c["mcnemar"]["only_a"],
            "only_b": c["mcnemar"]["only_b"], "p_mcnemar": c["mcnemar"]["pvalue"], "n": c["n"]}


@dataclass
class ListeningCheckRow(Row):
    policy: str
    own: float
    swapped: float
    chance: float
    p_above_chance: float = column("p (> chance)")
    p_above_swapped: float = column("p (> swapped)")
    n: int = column("n")
    passed: bool = column("passed")


@dataclass
class ContrastRow(Row):
    """Two arms on the same test items: the paired difference, its interval and McNemar's test."""

    question: str
    model_a: str = column("A")
    model_b: str = column("B")
    accuracy_a: float = column("acc. A")
    accuracy_b: float = column("acc. B")
    difference: float = column("A - B")
    low: float = column("95% low")
    high: float = column("95% high")
    only_a: int = column("only A right")
    only_b: int = column("only B right")
    p_mcnemar: float = column("McNemar p")
    n: int = column("n")


@dataclass
class StageRow(Row):
    stage: str
    folder: str
    seconds: float
    cached: bool = column("cached this run")
