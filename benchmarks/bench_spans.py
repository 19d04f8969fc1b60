"""Speed of the timestamp-citation parser (tgsr.spans) and of the rewards built on it.

Prints, for 1 MB inputs:
  * adversarial texts (digit runs, nested brackets, repeated "from", unterminated citations ...):
    find_spans and the paper-compat counter; goal < 1 s each;
  * realistic completions (reasoning with citations in every supported form);
  * a baseline measured in the same run: one plain ``\\d+`` scan over the same text (the floor
    for any regex pass), and a backtracking version of a paper pattern on a *small* digit run,
    to show the quadratic blow-up the grammar's bounded/possessive quantifiers avoid.

Run: .venv/bin/python benchmarks/bench_spans.py
"""

from __future__ import annotations

import random
import re
import time

from tgsr.rewards import get_reward
from tgsr.spans import count_citations, find_spans, format_span

MB = 1_000_000


def timed(fn, *args, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t)
    return best


def adversarial() -> dict[str, str]:
    rng = random.Random(0)
    alphabet = "0123456789.:-\u2013 ()[],stoandfromsecstarts"
    return {
        "digit run": "9" * MB,
        "digits and dots": ("1." * MB)[:MB],
        "nested brackets": ("[(" * MB)[:MB],
        "repeated 'from'": ("from " * MB)[:MB],
        "'from 1 ' repeated": ("from 1 " * MB)[:MB],
        "'starts at 1 and '": ("starts at 1 and " * MB)[:MB],
        "unterminated '[(1.2s - '": ("[(1.2s - " * MB)[:MB],
        "clock fragments": ("0:0" * MB)[:MB],
        "'1 to ' repeated": ("1 to " * MB)[:MB],
        "digit run + unit": "1" * (MB - 13) + " to 2 seconds",
        "random grammar chars": "".join(rng.choice(alphabet) for _ in range(MB)),
    }


def realistic(rng: random.Random) -> list[str]:
    forms = [
        lambda a, b: format_span(a, b),
        lambda a, b: f"from {a:.1f} seconds to {b:.1f} seconds",
        lambda a, b: f"({a:.2f}s \u2013 {b:.2f}s)",
        lambda a, b: f"[{a:.2f}s - {b:.2f}s]",
        lambda a, b: f"{a:.1f} to {b:.1f} seconds",
        lambda a, b: f"starts at {a:.2f} seconds and ends at {b:.2f} seconds",
        lambda a, b: f"{int(a) // 60:02d}:{a % 60:05.2f} - {int(b) // 60:02d}:{b % 60:05.2f}",
    ]
    filler = ("the first speaker sounds calm and asks about the meeting time, while the second "
              "replies with a short laugh and a question about the weather. ").split()
    out, total = [], 0
    while total < MB:
        parts = []
        for _ in range(rng.randint(1, 6)):
            a = rng.uniform(0, 60)
            parts.append(rng.choice(forms)(a, a + rng.uniform(0.3, 8)) + ", "
                         + " ".join(rng.choices(filler, k=rng.randint(8, 30))) + ".")
        parts.append(f"Final answer: ({rng.choice('abcd')}) two speakers")
        text = "\n".join(parts)
        out.append(text)
        total += len(text)
    return out


def main() -> None:
    print("tgsr.spans benchmark (best of 3, seconds)")
    header = ("input (1 MB)", "find_spans", "paper count", "digit scan", "ratio")
    print("{:28s} {:>10s} {:>11s} {:>10s} {:>6s}".format(*header))
    worst = 0.0
    digits = re.compile(r"\d+")
    for name, text in adversarial().items():
        t_find = timed(find_spans, text)
        t_paper = timed(count_citations, text, "paper")
        t_base = timed(lambda s: sum(1 for _ in digits.finditer(s)), text)
        worst = max(worst, t_find, t_paper)
        print(f"{name:28s} {t_find:10.3f} {t_paper:11.3f} {t_base:10.3f} {t_find / max(t_base, 1e-9):5.1f}x")
    print(f"worst adversarial time: {worst:.3f} s (goal < 1 s)")

    completions = realistic(random.Random(0))
    joined = "\n\n".join(completions)
    n_spans = len(find_spans(joined))
    t_joined = timed(find_spans, joined)
    t_each = timed(lambda cs: [find_spans(c) for c in cs], completions)
    t_base = timed(lambda s: sum(1 for _ in digits.finditer(s)), joined)
    print(f"\nrealistic: {len(completions)} completions, {len(joined) / MB:.2f} MB, {n_spans} citations")
    print(f"  find_spans on the whole text     {t_joined:.3f} s "
          f"({t_joined / max(t_base, 1e-9):.1f}x a digit scan, {t_base:.3f} s)")
    print(f"  find_spans per completion        {t_each:.3f} s ({1e6 * t_each / len(completions):.0f} us/completion)")
    for name, params in [("answer", {}), ("compaction", {"count": "distinct"}),
                         ("compaction", {"count": "paper"})]:
        reward = get_reward(name, **params)
        cols = {"answer": ["b"] * len(completions)}
        t = timed(lambda r=reward, c=cols: r(completions, **c))
        label = name + (f"[{params['count']}]" if params else "")
        print(f"  reward {label:24s}  {t:.3f} s ({1e6 * t / len(completions):.0f} us/completion)")

    # Baseline: the same paper pattern written with plain backtracking quantifiers is quadratic
    # in the length of a digit run. Measured on small runs only (it would not finish on 1 MB).
    naive = re.compile(r"(\d+(?:\.\d+)?)\s*(?:to|-|\u2013)\s*(\d+(?:\.\d+)?)\s*seconds?", re.I)
    print("\nbacktracking baseline vs tgsr on a digit run:")
    for n in (2_000, 4_000, 8_000):
        text = "9" * n
        t_naive = timed(lambda s: sum(1 for _ in naive.finditer(s)), text, repeat=1)
        t_ours = timed(count_citations, text, "paper")
        print(f"  {n:6d} digits: backtracking {t_naive:8.3f} s   tgsr paper count {t_ours:.5f} s"
              f"   ({t_naive / max(t_ours, 1e-9):.0f}x)")


if __name__ == "__main__":
    main()
