"""tgsr's rewards as ms-swift ORM plugins, for ``swift rlhf --rlhf_type grpo``.

Load this file with ``--external_plugins`` and name the rewards in ``--reward_funcs``::

    swift rlhf --rlhf_type grpo --external_plugins "$(python -m tgsr.integrations.swift)" \\
        --reward_funcs tgsr_answer tgsr_compaction --reward_weights 1 1 ...

===================  ==========================  =========================================
ms-swift name        tgsr reward                 dataset columns it reads
===================  ==========================  =========================================
``tgsr_answer``      ``answer`` (R_answer)       ``answer`` (or ``label``, ``solution``);
                                                 ``choices`` optional
``tgsr_compaction``  ``compaction`` (R_tg)       none
``tgsr_grounding``   ``grounding_iou``           ``evidence``, ``duration``
===================  ==========================  =========================================

ms-swift passes the decoded completions and every other dataset column as keyword lists,
which is the calling convention of ``tgsr.rewards`` too, so each class only picks its reward
(one definition: ``tgsr.rewards``). ms-swift names the gold answer ``solution``; it is read
as ``answer`` when the dataset has no ``answer`` column. Subclass and set ``params`` to
configure a reward (e.g. ``{"count": "paper"}`` for compaction).

The ORM base class and the ``orms`` registry come from ms-swift when it is installed
(``swift.rewards`` in 4.x, ``swift.plugin`` in 3.x); without it this module defines a base
with the same interface (``__init__(args=None, **kwargs)``, ``__call__(completions,
**kwargs) -> list[float]``) and a local registry, so it imports and can be tested anywhere.
This file is loaded by path (``--external_plugins``), so it uses absolute imports only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from tgsr.rewards import RewardFunction, get_reward

try:  # ms-swift 4.x
    from swift.rewards import ORM, orms
    FRAMEWORK = "ms-swift"
except ImportError:
    try:  # ms-swift 3.x
        from swift.plugin import ORM, orms
        FRAMEWORK = "ms-swift"
    except ImportError:
        FRAMEWORK = None

        class ORM:  # the interface of ms-swift's swift/plugin/orm.py
            def __init__(self, args=None, **kwargs):
                self.args = args

            def __call__(self, **kwargs) -> list[float]:
                raise NotImplementedError

        orms: dict[str, type] = {}

GOLD_ALIASES = ("solution",)  # ms-swift's name for the gold answer column


class TgsrReward(ORM):
    """One ``tgsr.rewards`` reward behind ms-swift's ORM interface."""

    reward: ClassVar[str] = ""
    params: ClassVar[dict[str, Any]] = {}

    def __init__(self, args=None, **kwargs):
        super().__init__(args, **kwargs)
        self.func: RewardFunction = get_reward(self.reward, **self.params)

    def __call__(self, completions, **kwargs) -> list[float]:
        if "answer" not in kwargs and "label" not in kwargs:
            for alias in GOLD_ALIASES:
                if alias in kwargs:
                    kwargs["answer"] = kwargs[alias]
                    break
        return self.func(completions, **kwargs)


class TgsrAnswer(TgsrReward):
    """R_answer: 1 when the final answer's letter is the gold one."""

    reward = "answer"


class TgsrCompaction(TgsrReward):
    """R_tg (paper Eq. 2): C_max for one citation, falling linearly to C_min at k_max."""

    reward = "compaction"


class TgsrGrounding(TgsrReward):
    """Mean IoU of the cited spans with the gold evidence (beyond the paper)."""

    reward = "grounding_iou"


REGISTERED = {"tgsr_answer": TgsrAnswer, "tgsr_compaction": TgsrCompaction, "tgsr_grounding": TgsrGrounding}
orms.update(REGISTERED)

__all__ = ["ORM", "orms", "FRAMEWORK", "TgsrReward", "TgsrAnswer", "TgsrCompaction", "TgsrGrounding", "REGISTERED"]

if __name__ == "__main__":  # `python -m tgsr.integrations.swift` prints the path for --external_plugins
    print(__file__)
