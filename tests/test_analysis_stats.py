"""Paired statistics against scipy: exact binomial and McNemar p-values, bootstrap intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap

from tgsr.analysis.stats import (
    above_chance,
    contrast,
    exact_binomial_p,
    mcnemar_exact,
    paired_bootstrap,
    poisson_binomial_sf,
)
from tgsr.errors import TgsrError


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_binomial_p_values_match_scipy(alternative):
    for n, p in ((1, 0.5), (7, 0.25), (20, 0.5), (96, 0.25), (300, 0.3), (1000, 0.25)):
        for k in sorted({0, 1, n // 4, n // 3, n // 2, n - 1, n}):
            ours = exact_binomial_p(k, n, p, alternative)
            ref = binomtest(k, n, p, alternative=alternative).pvalue
            assert ours == pytest.approx(ref, rel=1e-9, abs=1e-300), (k, n, p, alternative)


def test_mcnemar_is_the_binomial_test_on_discordant_pairs():
    rng = np.random.default_rng(0)
    a = rng.random(400) < 0.6
    b = np.where(rng.random(400) < 0.8, a, ~a) & (rng.random(400) < 0.9)
    r = mcnemar_exact(a, b)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    assert (r.only_a, r.only_b, r.n) == (only_a, only_b, 400) and only_a > only_b
    assert r.pvalue == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-9)
    g = mcnemar_exact(a, b, "greater")
    assert g.pvalue == pytest.approx(binomtest(only_a, only_a + only_b, 0.5, alternative="greater").pvalue, rel=1e-9)
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]).pvalue == 1.0  # no discordant pair


def test_paired_bootstrap_matches_scipy_percentile_interval():
    rng = np.random.default_rng(1)
    a = (rng.random(500) < 0.55).astype(int)
    b = (rng.random(500) < 0.45).astype(int)
    ours = paired_bootstrap(a, b, n_resamples=20_000, seed=3)
    ref = bootstrap((a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis), paired=True,
                    vectorized=True, n_resamples=20_000, method="percentile", confidence_level=0.95,
                    random_state=np.random.default_rng(4)).confidence_interval
    assert ours.difference == pytest.approx(a.mean() - b.mean())
    assert ours.low == pytest.approx(ref.low, abs=0.006) and ours.high == pytest.approx(ref.high, abs=0.006)
    assert ours.low < ours.difference < ours.high
    # the pairing matters: identical models give a degenerate interval at 0
    same = paired_bootstrap(a, a, seed=0)
    assert same.low == same.high == 0.0


def test_contrast_and_chance():
    c = contrast("A", [1, 1, 1, 0, 1, 1], "B", [0, 1, 0, 0, 1, 0], n_resamples=1000)
    assert (c.accuracy_a, c.accuracy_b) == (5 / 6, 2 / 6) and c.mcnemar.only_a == 3 and c.mcnemar.only_b == 0
    t = above_chance([1] * 40 + [0] * 60, 0.25)
    assert t.accuracy == 0.4 and t.pvalue == pytest.approx(binomtest(40, 100, 0.25, alternative="greater").pvalue)


def test_poisson_binomial_tail_for_mixed_option_counts():
    import itertools

    rates = [0.25, 0.5, 0.25, 0.5, 0.25]
    for k in range(6):
        brute = sum(np.prod([p if h else 1 - p for h, p in zip(hs, rates)])
                    for hs in itertools.product([0, 1], repeat=5) if sum(hs) >= k)
        assert poisson_binomial_sf(k, rates) == pytest.approx(brute, rel=1e-12)
    same = above_chance([1] * 30 + [0] * 70, [0.25] * 100)
    assert same.pvalue == pytest.approx(binomtest(30, 100, 0.25, alternative="greater").pvalue, rel=1e-9)


def test_bad_inputs_are_refused():
    with pytest.raises(TgsrError, match="equal-length"):
        mcnemar_exact([1, 0], [1, 0, 1])
    with pytest.raises(TgsrError, match="correctness"):
        paired_bootstrap([0.5, 1], [1, 0])
    with pytest.raises(TgsrError, match="no items"):
        mcnemar_exact([], [])
    with pytest.raises(TgsrError, match="0 <= k <= n"):
        exact_binomial_p(5, 3, 0.5)


def _run(folder, correct, *, errors=()):
    from tgsr.records import Prediction, write_jsonl

    write_jsonl(folder / "predictions.jsonl",
                [Prediction(id=f"q{i}", completion=None if i in errors else "x",
                            correct=None if i in errors else bool(c),
                            error="audio: missing" if i in errors else None) for i, c in enumerate(correct)])
    return folder


def test_contrast_of_two_eval_runs_and_its_command(tmp_path, capsys):
    from tgsr.analysis.stats import contrast_runs
    from tgsr.cli import main

    rng = np.random.default_rng(5)
    a = [bool(x) for x in rng.random(120) < 0.6]
    b = [bool(x) for x in rng.random(120) < 0.4]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _run(tmp_path / "a", a, errors={3})
    _run(tmp_path / "b", b)
    r = contrast_runs(tmp_path / "a", tmp_path / "b", n_resamples=2000)
    a[3] = False  # an item that could not be run counts as wrong
    only_a = sum(x and not y for x, y in zip(a, b))
    only_b = sum(y and not x for x, y in zip(a, b))
    got = (r["n"], r["mcnemar"]["only_a"], r["mcnemar"]["only_b"], r["errors_or_unparsed_a"])
    assert got == (120, only_a, only_b, 1)
    assert r["mcnemar"]["pvalue"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue, rel=1e-9)
    assert r["accuracy_a"] == pytest.approx(np.mean(a))
    out = tmp_path / "c.json"
    assert main(["analyze", "contrast", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    assert "McNemar exact" in capsys.readouterr().out and json.loads((tmp_path / "c.json").read_text())["n"] == 120
    (tmp_path / "short").mkdir()
    _run(tmp_path / "short", b[:100])
    assert main(["analyze", "contrast", str(tmp_path / "a"), str(tmp_path / "short")]) == 1
    assert "different items: 20 only in" in capsys.readouterr().err
    # on_items_of_b: a control run on the first items, paired with the full run on those
    sub = contrast_runs(tmp_path / "a", tmp_path / "short", on_items_of_b=True, n_resamples=2000)
    assert sub["n"] == 100 and sub["accuracy_a"] == pytest.approx(np.mean(a[:100]))
    with pytest.raises(TgsrError, match="different items: 0 only in .* 20 only in"):
        contrast_runs(tmp_path / "short", tmp_path / "a", on_items_of_b=True)  # B's items must all be in A
