"""tgsr's rewards inside other RL frameworks: thin wrappers over ``tgsr.rewards``.

- ``tgsr.integrations.swift``: ms-swift ORM classes (``--external_plugins``), registered as
  ``tgsr_answer``, ``tgsr_compaction`` and ``tgsr_grounding``.
- ``tgsr.integrations.verl``: verl's ``compute_score(data_source, solution_str, ground_truth,
  extra_info)``, by default the paper's R = R_answer + R_tg.

Neither framework is a tgsr dependency: each module imports without it (docs/integrations.md).
"""
