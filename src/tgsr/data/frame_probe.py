"""The bag-of-frames check: can a clip-level statistic of the audio pick the answer?

A linear probe (multinomial logistic regression, one per question family) is fit on
time-averaged log-mel features of the training clips and scored on the test clips. If the
answers can only be read at located evidence, it stays at chance. The same probe on a control
feature that does carry the answer (log-mel averaged over each evidence span, concatenated)
must score well above chance: that shows the probe is able to learn, so a chance result on the
clip features means something.

The log-mel is the one the audio LMs read (Whisper's: 25 ms Hann window, 10 ms hop, 128 Slaney
mel bands, log10 power), computed with ``transformers.audio_utils``. The regression is fit with
scipy's L-BFGS on the L2-penalised softmax cross-entropy of standardised features.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

from ..records import QAExample

SAMPLE_RATE = 16_000
N_MELS = 128
HOP = 160
FEATURES = ("clip", "evidence")


N_FFT = 400


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(frames, N_MELS) log10 mel power, Whisper's analysis (centred frames, reflect padding);
    the filters and window from ``transformers.audio_utils``, the frames vectorised."""
    from transformers.audio_utils import mel_filter_bank, window_function

    filters = mel_filter_bank(1 + N_FFT // 2, N_MELS, 0.0, 8000.0, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
    x = np.pad(np.asarray(audio, np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP] * window_function(N_FFT, "hann")
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return np.log10(np.maximum(power @ filters, 1e-10)).astype(np.float32)


def _span_mean(mel: np.ndarray, start: float, end: float) -> np.ndarray:
    a = max(0, int(np.floor(start * SAMPLE_RATE / HOP)))
    b = min(mel.shape[0], max(a + 1, int(np.ceil(end * SAMPLE_RATE / HOP))))
    return mel[a:b].mean(axis=0)


class SoftmaxRegression:
    """Multinomial logistic regression with an L2 penalty (``l2`` per sample), standardised inputs."""

    def __init__(self, n_classes: int, l2: float = 1e-2):
        self.n_classes, self.l2 = int(n_classes), float(l2)

    def fit(self, x: np.ndarray, y: np.ndarray) -> "SoftmaxRegression":
        from scipy.optimize import minimize
        from scipy.special import logsumexp

        x = np.asarray(x, np.float64)
        self.mean, self.scale = x.mean(axis=0), x.std(axis=0) + 1e-8
        z = (x - self.mean) / self.scale
        n, d = z.shape
        k = self.n_classes
        onehot = np.eye(k)[np.asarray(y, int)]

        def loss(theta):
            w, b = theta[:d * k].reshape(d, k), theta[d * k:]
            logits = z @ w + b
            lse = logsumexp(logits, axis=1, keepdims=True)
            p = np.exp(logits - lse)
            value = -(onehot * (logits - lse)).sum() / n + 0.5 * self.l2 * (w ** 2).sum()
            g = (p - onehot) / n
            return value, np.concatenate([(z.T @ g + self.l2 * w).ravel(), g.sum(axis=0)])

        res = minimize(loss, np.zeros(d * k + k), jac=True, method="L-BFGS-B", options={"maxiter": 500})
        self.w, self.b = res.x[:d * k].reshape(d, k), res.x[d * k:]
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float64) - self.mean) / self.scale
        return np.argmax(z @ self.w + self.b, axis=1)


@dataclass
class ProbeResult:
    feature: str
    accuracy: float
    chance: float
    hits: int
    n: int
    per_task: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"feature": self.feature, "accuracy": round(self.accuracy, 4), "chance": round(self.chance, 4),
                "hits": self.hits, "n": self.n, "per_task": self.per_task}


def probe_features(examples: Sequence[QAExample], feature: Literal["clip", "evidence"] = "clip",
                   cache: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
    """One row per item: the clip's mean log-mel, or (``evidence``) the mean log-mel of each
    evidence span, concatenated in order (rows of one family have equal length)."""
    from ..audio import load_audio

    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    cache = {} if cache is None else cache  # audio path -> log-mel, shared across calls
    rows = []
    for ex in examples:
        if ex.audio not in cache:
            cache[ex.audio] = log_mel(load_audio(ex.audio))
        mel = cache[ex.audio]
        if feature == "clip":
            rows.append(mel.mean(axis=0))
        else:
            if not ex.evidence:
                raise ValueError(f"{ex.id}: no evidence spans for the evidence feature")
            rows.append(np.concatenate([_span_mean(mel, s, e) for s, e in ex.evidence]))
    return rows


def bag_of_frames_probe(train: Sequence[QAExample], test: Sequence[QAExample],
                        feature: Literal["clip", "evidence"] = "clip", l2: float = 1e-2) -> ProbeResult:
    """Accuracy on ``test`` of per-family probes fit on ``train``. A test family with no
    training items is answered with option (a) (counted, not dropped)."""
    by_task: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for ex in train:
        by_task[ex.task][0].append(ex)
    for ex in test:
        by_task[ex.task][1].append(ex)
    hits, n, chance_sum, per_task = 0, 0, 0.0, {}
    cache: dict[str, np.ndarray] = {}
    for task, (tr, te) in sorted(by_task.items()):
        if not te:
            continue
        k = len(te[0].choices)
        y_te = np.array([ex.answer_index for ex in te])
        if tr:
            model = SoftmaxRegression(k, l2).fit(np.stack(probe_features(tr, feature, cache)),
                                                 np.array([ex.answer_index for ex in tr]))
            pred = model.predict(np.stack(probe_features(te, feature, cache)))
        else:
            pred = np.zeros(len(te), int)
        h = int((pred == y_te).sum())
        c = float(sum(1.0 / len(ex.choices) for ex in te))
        hits, n, chance_sum = hits + h, n + len(te), chance_sum + c
        per_task[task] = {"accuracy": round(h / len(te), 4), "chance": round(c / len(te), 4), "hits": h,
                          "n": len(te)}
    return ProbeResult(feature, hits / n if n else 0.0, chance_sum / n if n else 0.0, hits, n, per_task)


__all__ = ["log_mel", "SoftmaxRegression", "ProbeResult", "probe_features", "bag_of_frames_probe", "FEATURES"]
