"""ms-swift and verl wrappers give the rewards `tgsr rewards` gives on the same completions.

With ms-swift importable, the plugin file is loaded the way ``--external_plugins`` loads it
(``swift.utils.import_external_file``), the columns batched by ``RowPreprocessor`` and the
classes taken from ms-swift's own ``orms`` registry; without it, the same steps run against the
documented interface (a file import by path, columns as keyword lists, the module's registry).
verl's loader needs ray; ``compute_score`` is called the way its reward managers call it.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tgsr.cli import main
from tgsr.integrations import swift as swift_plugin
from tgsr.integrations.verl import compute_score, verl_fields
from tgsr.records import QAExample

CHOICES = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
BASE = {"choices": CHOICES, "evidence": [[1.2, 2.6]], "duration": 6.5}
ROWS = [
    # right answer, one citation on the evidence
    {"completion": "From 1.20s to 2.60s, Ross says \"What?\".\nThat line is said with surprise.\n"
                   "Final answer: (b) surprise", "answer": "b", **BASE},
    # right answer, three citations, one off the evidence
    {"completion": "From 0.00s to 1.00s, silence. From 1.30s to 2.50s, a question. From 1.20s to 2.60s, again.\n"
                   "Final answer: (b) surprise", "answer": "b", **BASE},
    # wrong answer, a citation past the clip
    {"completion": "From 5.00s to 9.00s, shouting.\nFinal answer: (g) anger", "answer": "b", **BASE},
    # no citation, answer given as a chat message
    {"completion": [{"role": "assistant", "content": "It sounds surprised.\nFinal answer: (b) surprise"}],
     "answer": "(B)", **BASE},
    # no final answer line
    {"completion": "From 1.20s to 2.60s, something.", "answer": "b", **BASE},
]
NAMES = {"tgsr_answer": "answer", "tgsr_compaction": "compaction", "tgsr_grounding": "grounding_iou"}


@pytest.fixture(scope="module")
def cli_rewards(tmp_path_factory):
    """What `tgsr rewards` writes for ROWS: reward name -> one value per row."""
    tmp = tmp_path_factory.mktemp("rewards")
    (tmp / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    args = ["rewards", "--input", str(tmp / "in.jsonl"), "--out", str(tmp / "out.jsonl")]
    for name in ("answer", "compaction", "grounding_iou", "combined"):
        args += ["--reward", name]
    assert main(args) == 0
    scored = [json.loads(line)["rewards"] for line in (tmp / "out.jsonl").read_text().splitlines()]
    values = {name: [s[name] for s in scored] for name in scored[0]}
    # the rows cover what matters: every reward takes more than one value
    assert all(len(set(v)) > 1 for v in values.values()), values
    return values


def _load_plugin_file():
    """The plugin module as ms-swift's --external_plugins loads it: a file by path."""
    path = Path(swift_plugin.__file__)
    if swift_plugin.FRAMEWORK:
        from swift.utils import import_external_file

        return import_external_file(str(path))
    spec = importlib.util.spec_from_file_location("_tgsr_swift_plugin_by_path", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _batched(rows: list[dict]) -> dict[str, list]:
    if swift_plugin.FRAMEWORK:
        from swift.dataset import RowPreprocessor

        return RowPreprocessor.rows_to_batched(rows)
    return {k: [r[k] for r in rows] for k in rows[0]}


def _completion_text(c) -> str:
    return c if isinstance(c, str) else c[-1]["content"]


def test_swift_plugins_match_tgsr_rewards(cli_rewards):
    module = _load_plugin_file()
    registry = module.orms
    if swift_plugin.FRAMEWORK:  # the classes are in ms-swift's own registry and derive from its ORM
        from swift.rewards import ORM, orms

        assert registry is orms and all(issubclass(orms[n], ORM) for n in NAMES)
    assert set(NAMES) <= set(registry)
    completions = [_completion_text(r["completion"]) for r in ROWS]  # ms-swift passes decoded strings
    columns = _batched([{k: v for k, v in r.items() if k != "completion"} for r in ROWS])
    for swift_name, tgsr_name in NAMES.items():
        reward = registry[swift_name](args=None)
        got = reward(completions, trainer_state=None, **columns)
        assert got == cli_rewards[tgsr_name], swift_name
    # ms-swift's usual gold column is `solution`
    columns = {("solution" if k == "answer" else k): v for k, v in columns.items()}
    assert registry["tgsr_answer"]()(completions, **columns) == cli_rewards["answer"]


def test_verl_compute_score_is_the_paper_reward(cli_rewards):
    for i, row in enumerate(ROWS):
        extra = {"choices": row["choices"], "evidence": row["evidence"], "duration": row["duration"],
                 "num_turns": 2, "rollout_reward_scores": {}}  # verl's reward managers add these
        out = compute_score(data_source="meld", solution_str=_completion_text(row["completion"]),
                            ground_truth=row["answer"], extra_info=extra)
        assert out["score"] == pytest.approx(cli_rewards["combined"][i])  # R = R_answer + R_tg
        assert out["answer"] == cli_rewards["answer"][i] and out["compaction"] == cli_rewards["compaction"][i]
        spec = {"answer": 1.0, "compaction": 1.0, "grounding_iou": 1.0}  # reward_kwargs.rewards
        out = compute_score("meld", _completion_text(row["completion"]), {"answer": row["answer"], **BASE},
                            rewards=spec)
        assert out["grounding_iou"] == cli_rewards["grounding_iou"][i]
        assert out["score"] == pytest.approx(cli_rewards["answer"][i] + cli_rewards["compaction"][i]
                                             + cli_rewards["grounding_iou"][i])


def test_verl_fields_carry_what_the_rewards_read():
    ex = QAExample(id="q", audio="a.wav", question="Which?", choices=CHOICES, answer="b", duration=6.5,
                   evidence=[(1.2, 2.6)])
    row = verl_fields(ex)
    out = compute_score(row["data_source"], ROWS[0]["completion"], row["reward_model"]["ground_truth"],
                        row["extra_info"], rewards={"grounding_iou": 1.0})
    assert out == {"score": 1.0, "grounding_iou": 1.0}


def test_verl_reward_kwargs_as_config_containers():
    """verl passes reward_kwargs as OmegaConf containers: any Mapping/Sequence spec works."""
    from collections import UserDict, UserList

    spec = UserDict({"answer": 1.0, "compaction": UserDict({"weight": 2.0, "count": "paper"})})
    out = compute_score("meld", ROWS[0]["completion"], "b", {"choices": UserList(CHOICES)}, rewards=spec)
    assert out["score"] == pytest.approx(out["answer"] + 2 * out["compaction"]) and out["answer"] == 1.0
