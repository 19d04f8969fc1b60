"""tgsr's rewards as a verl reward function.

verl calls ``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)``
once per response and takes a float, or a dict whose ``"score"`` is the reward (the other keys
are logged). Point verl at this module::

    reward.custom_reward_function.path=pkg://tgsr.integrations.verl reward.custom_reward_function.name=compute_score

(verl 0.9; older releases read a top-level ``custom_reward_function`` and take a file path,
which works too: this module uses absolute imports.)

Per row, ``reward_model.ground_truth`` is the gold letter (``"b"``, ``"(B)"``, or a 0-based
index), or a dict of tgsr's columns; ``extra_info`` carries ``choices``, ``evidence`` and
``duration`` (``verl_fields`` makes all three from a ``qa.jsonl`` example). The score is, by
default, the paper's R = R_answer + R_tg (the ``paper`` preset of ``tgsr train grpo``);
another ``tgsr.rewards`` spec is given through ``custom_reward_function.reward_kwargs.rewards``
(e.g. ``{answer: 1, compaction: 1, grounding_iou: 1}``), which verl passes as a keyword.
Nothing here imports verl.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping, Sequence

from tgsr.records import QAExample
from tgsr.rewards import RewardFunction, build_reward_funcs, get_reward
from tgsr.train.config import ABLATIONS

PAPER_REWARDS: dict[str, Any] = ABLATIONS["paper"]["rewards"]  # R = R_answer + R_tg
COLUMNS = ("answer", "label", "choices", "evidence", "duration")


@lru_cache(maxsize=16)
def _rewards(spec_json: str) -> tuple[RewardFunction, list[RewardFunction]]:
    spec = json.loads(spec_json)
    funcs, _ = build_reward_funcs(spec)
    return get_reward("combined", components=spec), funcs


def _plain(value: Any) -> Any:
    """Plain dicts and lists (verl hands ``reward_kwargs`` over as OmegaConf containers)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):  # also ListConfig
        return [_plain(v) for v in value]
    return value


def _columns(ground_truth: Any, extra_info: Mapping | None) -> dict[str, list]:
    row: dict[str, Any] = {}
    if isinstance(extra_info, Mapping):
        row.update({k: extra_info[k] for k in COLUMNS if k in extra_info})
    if isinstance(ground_truth, Mapping):
        row.update({k: ground_truth[k] for k in COLUMNS if k in ground_truth})
    else:
        row["answer"] = ground_truth
    return {k: [v] for k, v in row.items()}


def compute_score(data_source: str | None, solution_str: str, ground_truth: Any,
                  extra_info: Mapping | None = None, *, rewards: Mapping[str, Any] | None = None,
                  **_: Any) -> dict[str, float]:
    """``{"score": R, <component>: value ...}`` for one response; R is the weighted sum."""
    combined, funcs = _rewards(json.dumps(_plain(rewards or PAPER_REWARDS), sort_keys=True))
    columns = _columns(ground_truth, extra_info)
    out = {"score": combined([solution_str], **columns)[0]}
    out.update({f.__name__: f([solution_str], **columns)[0] for f in funcs})
    return out


def verl_fields(ex: QAExample, data_source: str = "tgsr") -> dict[str, Any]:
    """The reward fields of one verl dataset row for a tgsr question (its prompt is the trainer's)."""
    return {"data_source": data_source, "reward_model": {"style": "rule", "ground_truth": ex.answer},
            "extra_info": {"id": ex.id, "choices": list(ex.choices), "evidence": [list(p) for p in ex.evidence],
                           "duration": ex.duration}}


__all__ = ["compute_score", "verl_fields", "PAPER_REWARDS"]
