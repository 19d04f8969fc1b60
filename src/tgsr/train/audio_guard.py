"""The GRPO audio guard: do the training passes see the audio that generation saw?

Generation records the sampling log-probs of the tokens it drew; the trainer's log-prob pass
recomputes them from the prompt, the audio features and the tokens. If the audio were missing
or paired with the wrong row, the two would disagree. How much disagreement rounding alone
causes depends on the precision:

- float32: the passes agree to ~1e-6, so the largest per-token gap must stay under
  ``tol`` (default 1e-4).
- bfloat16 / float16: batched decoding and one full forward round differently; at the 7B
  shape the measured gap is max 0.196, mean 0.038 over 16,384 tokens (H100 and H200), so the
  maximum cannot separate rounding from a bug. The guard uses the mean gap (default tolerance
  0.1) and a contrast: the same tokens scored with every row given *another* row's clip. With
  the right audio the gap must be clearly smaller (at most half) than with swapped audio, as
  long as swapping moves the log-probs beyond rounding at all; a model that barely uses its
  audio (a random-weight benchmark model) passes on the mean alone, and the result says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

FULL_PRECISION_TOL = 1e-4
REDUCED_PRECISION_MEAN_TOL = 0.1
CONTRAST_RATIO = 0.5


@dataclass
class GuardResult:
    precision: str                 # "full" | "reduced"
    max: float                     # largest per-token |training - sampling| gap, own audio
    mean: float
    tokens: int
    tol: float
    swapped_mean: float | None     # mean gap with every row given another row's clip (None: one clip only)
    passed: bool
    reason: str

    def record(self, step: int) -> dict:
        out = asdict(self)
        out["step"] = float(step)
        return out


def swap_permutation(paths: list[str]) -> list[int] | None:
    """For each row, the index of a row with a different clip (each clip's rows take the next clip's,
    in first-seen order); None when all rows share one clip."""
    order = list(dict.fromkeys(paths))
    if len(order) < 2:
        return None
    first = {p: paths.index(p) for p in order}
    nxt = {p: order[(i + 1) % len(order)] for i, p in enumerate(order)}
    return [first[nxt[p]] for p in paths]


def judge(own: torch.Tensor, sampling: torch.Tensor, mask: torch.Tensor, *, full_precision: bool,
          tol: float | None = None, swapped: torch.Tensor | None = None) -> GuardResult:
    """Decide from per-token log-probs [B, T] (own audio, sampling, optional swapped audio) and the mask."""
    m = mask.bool()
    gap = (own.float() - sampling.float()).abs()[m]
    n = int(m.sum())
    gmax, gmean = (gap.max().item(), gap.mean().item()) if n else (0.0, 0.0)
    swapped_mean = None
    if swapped is not None and n:
        swapped_mean = (swapped.float() - sampling.float()).abs()[m].mean().item()
    if full_precision:
        tol = FULL_PRECISION_TOL if tol is None else tol
        ok = gmax <= tol
        reason = (f"max gap {gmax:.3g} <= {tol:g}" if ok else
                  f"max gap {gmax:.3g} > {tol:g} in float32: the log-prob passes do not see what generation saw "
                  "(audio features, their pairing with rows, or positions)")
        return GuardResult("full", gmax, gmean, n, tol, swapped_mean, ok, reason)
    tol = REDUCED_PRECISION_MEAN_TOL if tol is None else tol
    if gmean > tol:
        return GuardResult("reduced", gmax, gmean, n, tol, swapped_mean, False,
                           f"mean gap {gmean:.3g} > {tol:g}: far above reduced-precision rounding (~0.04 at 7B in "
                           "bf16); the log-prob passes do not see what generation saw")
    if swapped_mean is None:
        reason = f"mean gap {gmean:.3g} <= {tol:g} (one clip in the batch: pairing not contrasted)"
        return GuardResult("reduced", gmax, gmean, n, tol, None, True, reason)
    if swapped_mean <= tol:
        reason = (f"mean gap {gmean:.3g} <= {tol:g}; swapping the audio moves log-probs by only {swapped_mean:.3g}, "
                  "within rounding, so this model's use of its audio cannot be verified")
        return GuardResult("reduced", gmax, gmean, n, tol, swapped_mean, True, reason)
    ok = gmean <= CONTRAST_RATIO * swapped_mean
    reason = (f"mean gap {gmean:.3g} with each row's own audio vs {swapped_mean:.3g} with swapped audio"
              + ("" if ok else f": own audio explains the samples no better than other clips (ratio > "
                               f"{CONTRAST_RATIO:g}); audio and rows are mis-paired"))
    return GuardResult("reduced", gmax, gmean, n, tol, swapped_mean, ok, reason)


__all__ = ["CONTRAST_RATIO", "FULL_PRECISION_TOL", "GuardResult", "REDUCED_PRECISION_MEAN_TOL", "judge",
           "swap_permutation"]
