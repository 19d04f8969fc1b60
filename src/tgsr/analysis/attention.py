"""Block-level attention of generated tokens, aggregated layer by layer in bounded memory.

For every generated token and every decoder layer we measure how much attention (averaged
over heads) it pays to four blocks of the input: ``system``, ``audio``, ``question`` and the
generated ``output`` so far. Two normalisations:

* ``mass`` (summed): the sum of the attention weights over the block's keys. The four
  masses of a row sum to the row's total attention, 1 for a softmax row.
* ``per_token``: the mass divided by the number of the block's keys the token can see
  (causal attention: an output token sees only the output tokens before it and itself).

How the numbers are obtained: generate first, then run one teacher-forced forward pass over
prompt + completion. The row at position ``P - 1 + i`` (``P`` = prompt length) is the query
that produced generated token ``i``, so the rows equal the attention collected step by step
during generation. During that forward pass the decoder's attention runs through
``block_attention_forward`` (registered in transformers' attention interface): it computes
exact eager attention query-chunk by query-chunk, reduces each chunk's weights to
``[rows, n_blocks]`` at once and drops them. Peak extra memory is one chunk of one layer,
``H x chunk x K`` floats, instead of ``L x H x K x K`` for ``output_attentions=True``.

**Attention inside the cited spans.** The output's valid citations (``tgsr.spans.find_spans``,
merged) are mapped onto the clip's audio tokens, which cover the clip uniformly in time (token
``j`` of ``n`` holds ``[j, j + 1) x duration / n``). For each generated token the recorder also
keeps the mass on those keys; the **span ratio** is that mass's share of the token's audio mass,
divided by the span keys' share of the audio keys. 1 means the token attends to the cited audio
no more than to any other audio; above 1 it looks where the reasoning says it listened. It is
pooled over tokens like the block masses, over all tokens and the answer tokens, for items that
cite (others are counted in ``n_without_span``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch

from . import PROBE_QUERIES

BLOCKS: tuple[str, ...] = ("system", "audio", "question", "output")
PHASES: tuple[str, ...] = ("reasoning", "timestamp", "answer")
SPAN_GROUPS: tuple[str, ...] = ("all", "answer")   # token groups of the cited-span ratio
IMPL_NAME = "tgsr_block_attention"
DEFAULT_CHUNK = 128


# ------------------------------------------------------------------------ block layout

@dataclass(frozen=True)
class BlockLayout:
    """Key ranges of the four blocks in one sequence; together they cover ``[0, seq_len)``."""

    bounds: tuple[tuple[int, int], ...]   # one (start, end) per name in BLOCKS
    seq_len: int

    def __post_init__(self):
        pos = 0
        for name, (a, b) in zip(BLOCKS, self.bounds):
            if a != pos or b < a:
                raise ValueError(f"block {name!r} {a, b} does not continue the partition at {pos}")
            pos = b
        if pos != self.seq_len:
            raise ValueError(f"blocks end at {pos}, sequence has {self.seq_len} tokens")

    def as_dict(self) -> dict[str, tuple[int, int]]:
        return dict(zip(BLOCKS, self.bounds))

    def visible_counts(self, positions: torch.Tensor) -> torch.Tensor:
        """``[len(positions), n_blocks]``: keys of each block a causal query at each position sees."""
        p = positions.to(torch.float64).unsqueeze(1) + 1.0          # keys 0..p are visible
        a = torch.tensor([b[0] for b in self.bounds], dtype=torch.float64)
        b = torch.tensor([b[1] for b in self.bounds], dtype=torch.float64)
        return (torch.minimum(b, p) - a).clamp(min=0.0)


def partition_blocks(blocks: Mapping[str, tuple[int, int]], seq_len: int) -> BlockLayout:
    """Turn the model adapter's block ranges into a partition of the whole sequence.

    ``tgsr.models`` adapters already report a partition; other sources may report only the
    core of each block (e.g. the audio placeholder tokens). Tokens in between -- chat-template
    markers such as ``<|im_start|>user``, ``<|audio_bos|>`` or ``<|im_start|>assistant`` -- are
    given to the block on their left (the ones before the first block go to ``system``), so
    every key belongs to exactly one block and a row's block masses add up to its total
    attention. An empty or missing block gets zero width.
    """
    missing = [n for n in ("audio", "output") if n not in blocks]
    if missing:
        raise ValueError(f"token blocks lack {missing}; got {sorted(blocks)}")
    starts: dict[str, int] = {"system": 0}
    for name in BLOCKS[1:]:
        if name in blocks:
            a, b = (int(x) for x in blocks[name])
            if not (0 <= a <= b <= seq_len):
                raise ValueError(f"block {name!r} ({a}, {b}) is outside a sequence of {seq_len} tokens")
            if b > a or name == "output":
                starts[name] = a
    present = [n for n in BLOCKS if n in starts]
    for prev, nxt in zip(present, present[1:]):
        if starts[nxt] < starts[prev]:
            raise ValueError(f"block {nxt!r} starts before block {prev!r}: {dict(blocks)}")
    bounds = []
    for i, name in enumerate(BLOCKS):
        nxt = next((starts[n] for n in BLOCKS[i + 1:] if n in starts), seq_len)
        a = starts.get(name, nxt)          # an absent block has zero width
        bounds.append((a, nxt))
    return BlockLayout(bounds=tuple(bounds), seq_len=seq_len)


# ------------------------------------------------------------------------ recorder

class _Recorder:
    """Receives attention chunks and keeps only the per-block reductions of the wanted rows."""

    def __init__(self, layout: BlockLayout, rows: tuple[int, int], span_keys: torch.Tensor | None = None):
        self.layout = layout
        self.rows = rows
        self.span_keys = span_keys                      # [K] bool: audio keys inside the cited spans
        self.layers: dict[int, torch.Tensor] = {}      # layer -> [n_rows, n_blocks] float64
        self.totals: dict[int, torch.Tensor] = {}      # layer -> [n_rows] float64
        self.spans: dict[int, torch.Tensor] = {}       # layer -> [n_rows] float64, mass on span_keys
        self.peak_chunk_bytes = 0

    def consume(self, layer: int, q0: int, weights: torch.Tensor) -> None:
        """``weights``: [1, H, q, K] softmax weights of query rows ``q0 .. q0 + q``."""
        self.peak_chunk_bytes = max(self.peak_chunk_bytes, weights.numel() * weights.element_size())
        r0, r1 = self.rows
        lo, hi = max(r0, q0), min(r1, q0 + weights.shape[2])
        if lo >= hi:
            return
        w = weights[0, :, lo - q0:hi - q0, :].to(torch.float64).mean(dim=0)   # [rows, K]
        masses = torch.stack([w[:, a:b].sum(dim=-1) for a, b in self.layout.bounds], dim=-1)
        if layer not in self.layers:
            self.layers[layer] = torch.zeros(r1 - r0, len(BLOCKS), dtype=torch.float64)
            self.totals[layer] = torch.zeros(r1 - r0, dtype=torch.float64)
        self.layers[layer][lo - r0:hi - r0] = masses.cpu()
        self.totals[layer][lo - r0:hi - r0] = w.sum(dim=-1).cpu()
        if self.span_keys is not None:
            if layer not in self.spans:
                self.spans[layer] = torch.zeros(r1 - r0, dtype=torch.float64)
            self.spans[layer][lo - r0:hi - r0] = w[:, self.span_keys.to(w.device)].sum(dim=-1).cpu()

    def result(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        layers = sorted(self.layers)
        if not layers:
            raise RuntimeError("no decoder layer reported attention: the model did not dispatch its attention "
                               "through transformers' attention interface")
        spans = torch.stack([self.spans[i] for i in layers]) if self.span_keys is not None else None
        return (torch.stack([self.layers[i] for i in layers]), torch.stack([self.totals[i] for i in layers]), spans)


def _repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    if n_rep == 1:
        return x
    b, h, s, d = x.shape
    return x[:, :, None].expand(b, h, n_rep, s, d).reshape(b, h * n_rep, s, d)


def block_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Exact eager attention computed in query chunks; each chunk's weights are reduced and freed.

    Same arithmetic as transformers' eager attention (scores in the model dtype, softmax in
    float32, cast back), so the reduced numbers equal those from ``output_attentions=True``.
    """
    recorder: _Recorder | None = getattr(module, "_tgsr_recorder", None)
    chunk = getattr(module, "_tgsr_chunk", DEFAULT_CHUNK)
    if kwargs.get("s_aux") is not None:
        raise NotImplementedError("attention sinks are not supported by the block-attention recorder")
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    n_rep = query.shape[1] // key.shape[1]
    key = _repeat_kv(key, n_rep)
    value = _repeat_kv(value, n_rep)
    q_len, k_len = query.shape[2], key.shape[2]
    out = torch.empty(query.shape[:3] + (value.shape[-1],), dtype=value.dtype, device=value.device)
    layer = getattr(module, "layer_idx", None)
    kt = key.transpose(2, 3)
    for q0 in range(0, q_len, chunk):
        q1 = min(q_len, q0 + chunk)
        scores = torch.matmul(query[:, :, q0:q1], kt) * scaling
        if attention_mask is not None:
            m = attention_mask[..., :k_len] if attention_mask.shape[2] == 1 else attention_mask[:, :, q0:q1, :k_len]
            scores = scores.masked_fill(~m, torch.finfo(scores.dtype).min) if m.dtype == torch.bool else scores + m
        weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
        del scores
        if dropout and module.training:
            weights = torch.nn.functional.dropout(weights, p=dropout, training=True)
        out[:, :, q0:q1] = torch.matmul(weights, value)
        if recorder is not None and layer is not None:
            recorder.consume(int(layer), q0, weights)
        del weights
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    if IMPL_NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(IMPL_NAME, block_attention_forward)
    if IMPL_NAME not in ALL_MASK_ATTENTION_FUNCTIONS._global_mapping:
        ALL_MASK_ATTENTION_FUNCTIONS.register(IMPL_NAME, eager_mask)


def decoder_attention_modules(model) -> list[torch.nn.Module]:
    """The self-attention modules of the language decoder (not the audio encoder), in layer order."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    mods = [m for name, m in decoder.named_modules()
            if name.endswith("self_attn") and hasattr(m, "layer_idx") and hasattr(m, "config")]
    if not mods:
        raise ValueError(f"no decoder self-attention modules found in {type(model).__name__}")
    return sorted(mods, key=lambda m: m.layer_idx)


@contextlib.contextmanager
def recording(model, layout: BlockLayout, rows: tuple[int, int], chunk: int = DEFAULT_CHUNK,
              span_keys: torch.Tensor | None = None) -> Iterator[_Recorder]:
    """Route the decoder's attention through ``block_attention_forward`` for one forward pass."""
    _register()
    mods = decoder_attention_modules(model)
    configs = {id(m.config): m.config for m in mods}
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    configs.setdefault(id(decoder.config), decoder.config)
    saved = {k: c._attn_implementation for k, c in configs.items()}
    rec = _Recorder(layout, rows, span_keys)
    try:
        for c in configs.values():
            c._attn_implementation = IMPL_NAME
        for m in mods:
            m._tgsr_recorder = rec
            m._tgsr_chunk = chunk
        yield rec
    finally:
        for k, c in configs.items():
            c._attn_implementation = saved[k]
        for m in mods:
            for attr in ("_tgsr_recorder", "_tgsr_chunk"):
                if hasattr(m, attr):
                    delattr(m, attr)


@dataclass
class BlockAttention:
    """Per-layer block attention of the generated tokens of one sequence.

    ``mass`` and ``per_token`` are ``[layers, n_generated, n_blocks]`` (float64); ``total`` is
    each row's summed attention, ``[layers, n_generated]`` (1 up to rounding). ``span_mass``
    (``[layers, n_generated]``) is the mass on the audio keys inside the output's cited spans,
    ``span_share`` those keys' share of the audio keys (both None without a citation).
    """

    mass: torch.Tensor
    per_token: torch.Tensor
    total: torch.Tensor
    layout: BlockLayout
    rows: tuple[int, int]
    peak_chunk_bytes: int = 0
    phases: list[str] = field(default_factory=list)
    span_mass: torch.Tensor | None = None
    span_share: float | None = None

    def span_ratio(self) -> torch.Tensor | None:
        """``[layers, n_generated]``: span mass / audio mass, over span keys / audio keys (module doc)."""
        if self.span_mass is None or not self.span_share:
            return None
        audio = self.mass[:, :, BLOCKS.index("audio")]
        return torch.where(audio > 0, self.span_mass / audio.clamp(min=1e-300), torch.zeros_like(audio)) \
            / self.span_share


def _per_token(mass: torch.Tensor, layout: BlockLayout, rows: tuple[int, int]) -> torch.Tensor:
    counts = layout.visible_counts(torch.arange(rows[0], rows[1]))        # [n, blocks]
    return torch.where(counts > 0, mass / counts.clamp(min=1.0), torch.zeros_like(mass))


@torch.no_grad()
def block_attention(model, inputs: Mapping[str, torch.Tensor], layout: BlockLayout,
                    rows: tuple[int, int], *, chunk: int = DEFAULT_CHUNK,
                    span_keys: torch.Tensor | None = None) -> BlockAttention:
    """One forward pass over ``inputs`` (batch of one), keeping block reductions of ``rows``, and the
    mass on ``span_keys`` (a ``[seq_len]`` bool mask of audio keys) when given."""
    ids = inputs["input_ids"]
    if ids.shape[0] != 1:
        raise ValueError("block_attention runs one sequence at a time (batch size 1)")
    if ids.shape[1] != layout.seq_len:
        raise ValueError(f"layout covers {layout.seq_len} tokens, inputs have {ids.shape[1]}")
    if not (0 <= rows[0] <= rows[1] <= layout.seq_len):
        raise ValueError(f"rows {rows} outside the sequence")
    was_training = model.training
    model.eval()
    try:
        with recording(model, layout, rows, chunk, span_keys) as rec:
            model(**inputs, use_cache=False)
    finally:
        model.train(was_training)
    mass, total, span_mass = rec.result()
    return BlockAttention(mass=mass, per_token=_per_token(mass, layout, rows), total=total,
                          layout=layout, rows=rows, peak_chunk_bytes=rec.peak_chunk_bytes, span_mass=span_mass)


def cited_audio_keys(text: str, audio_positions: Sequence[int], duration: float, seq_len: int
                     ) -> torch.Tensor | None:
    """``[seq_len]`` bool mask of the audio tokens inside the text's valid citations (merged, clipped to
    the clip), the tokens covering the clip uniformly; None when nothing is cited inside the clip."""
    import math

    from ..spans import find_spans

    n = len(audio_positions)
    if n == 0 or duration <= 0:
        return None
    mask = torch.zeros(seq_len, dtype=torch.bool)
    for s in find_spans(text):
        a, b = max(0.0, s.start), min(duration, s.end)
        if not s.valid or b <= a:
            continue
        j0, j1 = int(math.floor(a / duration * n)), int(math.ceil(b / duration * n))
        for j in range(j0, min(j1, n)):
            mask[audio_positions[j]] = True
    return mask if bool(mask.any()) else None


def reduce_full_attentions(attentions: Sequence[torch.Tensor], layout: BlockLayout,
                           rows: tuple[int, int]) -> BlockAttention:
    """The same reduction from full ``output_attentions=True`` weights (the reference path)."""
    masses, totals = [], []
    for w in attentions:
        w = w[0, :, rows[0]:rows[1], :].to(torch.float64).mean(dim=0)
        masses.append(torch.stack([w[:, a:b].sum(dim=-1) for a, b in layout.bounds], dim=-1))
        totals.append(w.sum(dim=-1))
    mass = torch.stack(masses)
    return BlockAttention(mass=mass, per_token=_per_token(mass, layout, rows), total=torch.stack(totals),
                          layout=layout, rows=rows)


# ------------------------------------------------------------------------ phases

def token_char_spans(tokenizer, token_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Character range of each generated token in ``tokenizer.decode(token_ids)``.

    Decodes growing prefixes, so byte-level BPE pieces that only form a character together
    are handled: a token that completes no character gets an empty range at the current end.
    Special tokens decode to nothing and get empty ranges too.
    """
    spans, prev = [], 0
    text_so_far = ""
    for i in range(len(token_ids)):
        text_so_far = tokenizer.decode(list(token_ids[: i + 1]), skip_special_tokens=True)
        # a replacement char at the end means an incomplete UTF-8 sequence: do not count it yet
        cur = len(text_so_far.rstrip("\ufffd"))
        cur = max(cur, prev)
        spans.append((prev, cur))
        prev = cur
    return spans


def token_phases(text: str, char_spans: Sequence[tuple[int, int]]) -> list[str]:
    """Phase of each generated token: ``answer``, ``timestamp`` or ``reasoning``.

    * ``answer``: the token reaches into the final answer line (``tgsr.answers.answer_line``, when
      it states an answer: a truncated rationale has no answer phase), and
      every token after it (end-of-turn markers);
    * ``timestamp``: the token overlaps a citation found by ``tgsr.spans.find_spans``;
    * ``reasoning``: everything else.
    The three phases partition the generated tokens; ``answer`` wins over ``timestamp``.
    Tokens that decode to no character (special tokens, partial UTF-8) take the phase of
    the position where they sit.
    """
    from ..answers import answer_line
    from ..spans import find_spans

    line = answer_line(text)
    ans = line.start if line is not None and line.states_answer else None
    cites = [(s.char_start, s.char_end) for s in find_spans(text)]
    phases = []
    for a, b in char_spans:
        if ans is not None and (b > ans or a >= ans):
            phases.append("answer")
        elif any((a < ce and b > cs) or (a == b and cs <= a < ce) for cs, ce in cites):
            phases.append("timestamp")
        else:
            phases.append("reasoning")
    return phases


# ------------------------------------------------------------------------ summaries

def accumulate(result: BlockAttention) -> dict:
    """Sums and counts of one sequence's tokens, per group (all tokens and each phase).

    Summaries are built from these, so a run never keeps per-token arrays of past items and
    per-item records written to disk are enough to rebuild (or resume) a summary.
    """
    groups = {"all": list(range(result.mass.shape[1]))}
    for p in PHASES:
        groups[p] = [i for i, ph in enumerate(result.phases) if ph == p]
    acc: dict = {"n_layers": int(result.mass.shape[0]), "counts": {}, "sums": {}}
    for g, idx in groups.items():
        acc["counts"][g] = len(idx)
    for norm in ("mass", "per_token"):
        t = getattr(result, norm)
        acc["sums"][norm] = {g: (t[:, idx].sum(dim=1).tolist() if idx else None) for g, idx in groups.items()}
    ratio = result.span_ratio()
    if ratio is not None:  # [L, n] -> per-layer sums over the group's tokens
        acc["span_ratio"] = {g: (ratio[:, idx].sum(dim=1).tolist() if idx else None)
                             for g, idx in groups.items() if g in SPAN_GROUPS}
        acc["span_share"] = result.span_share
    return acc


def summarize_accumulators(accs: Sequence[dict]) -> dict:
    """Token-pooled averages (each generated token weighs the same), per layer and over layers."""
    out: dict = {"blocks": list(BLOCKS), "n_sequences": len(accs)}
    if not accs:
        return out
    n_layers = accs[0]["n_layers"]
    if any(a["n_layers"] != n_layers for a in accs):
        raise ValueError("accumulators come from models with different numbers of layers")
    out["n_layers"] = n_layers
    for norm in ("mass", "per_token"):
        sec: dict = {}
        for g in ("all",) + PHASES:
            n = sum(a["counts"][g] for a in accs)
            if n == 0:
                sec[g] = {"n_tokens": 0}
                continue
            total = sum(torch.tensor(a["sums"][norm][g], dtype=torch.float64)
                        for a in accs if a["counts"][g])
            by_layer = total / n                                    # [L, blocks]
            sec[g] = {
                "n_tokens": n,
                "by_layer": {b: by_layer[:, j].tolist() for j, b in enumerate(BLOCKS)},
                "mean": {b: float(by_layer[:, j].mean()) for j, b in enumerate(BLOCKS)},
            }
        out[norm] = sec
    cited = [a for a in accs if "span_ratio" in a]
    span: dict = {"n_with_span": len(cited), "n_without_span": len(accs) - len(cited),
                  "mean_span_share": float(sum(a["span_share"] for a in cited) / len(cited)) if cited else None}
    for g in SPAN_GROUPS:
        n = sum(a["counts"][g] for a in cited if a["span_ratio"].get(g) is not None)
        if n == 0:
            span[g] = {"n_tokens": 0}
            continue
        total = sum(torch.tensor(a["span_ratio"][g], dtype=torch.float64) for a in cited
                    if a["span_ratio"].get(g) is not None)
        by_layer = total / n
        span[g] = {"n_tokens": n, "by_layer": by_layer.tolist(), "mean": float(by_layer.mean())}
    out["span_ratio"] = span
    return out


def summarize(results: Sequence[BlockAttention]) -> dict:
    """Averages over tokens (all, and by phase), per layer and over layers, for both normalisations."""
    return summarize_accumulators([accumulate(r) for r in results])


def table4_rows(summaries: Mapping[str, dict], norm: str = "mass") -> str:
    """Markdown in the style of the paper's Table 4: audio attention overall / reasoning / answer."""
    title = {"mass": "summed (attention mass)", "per_token": "per token (block mean)"}.get(norm, norm)
    lines = [f"Audio attention of generated tokens, {title}, mean over layers:", "",
             "| model | overall | reasoning | timestamp | answer | tokens | cited-span ratio, answer (items) |",
             "|---|---|---|---|---|---|---|"]
    for label, s in summaries.items():
        sec = s.get(norm, {})

        cells = []
        for g in ("all", "reasoning", "timestamp", "answer"):
            m = sec.get(g, {}).get("mean")
            cells.append(f"{m['audio']:.4f}" if m else "n/a")
        n = sec.get("all", {}).get("n_tokens", 0)
        span = s.get("span_ratio", {})
        ratio = span.get("answer", {}).get("mean")
        ratio_cell = f"{ratio:.2f} ({span.get('n_with_span', 0)})" if ratio is not None else "n/a"
        lines.append(f"| {label} | {' | '.join(cells)} | {n} | {ratio_cell} |")
    lines += ["", "Cited-span ratio: the answer tokens' audio attention inside the cited spans, as a share of "
              "their audio attention, over the spans' share of the audio tokens (1: no preference for the "
              "cited audio)."]
    return "\n".join(lines)


# ------------------------------------------------------------------------ running on a model

@dataclass
class AttentionJob:
    """One prompt to analyse: an item id, its audio file and the conversation to ask."""

    id: str
    audio: str
    conversation: list
    query: str = ""
    completion: str | None = None      # analyse this text (teacher-forced) instead of generating


def analyze_example(lm, audio, conversation, *, max_new_tokens: int = 128, chunk: int = DEFAULT_CHUNK,
                    completion: str | None = None, sample_rate: int = 16000) -> tuple[BlockAttention, str]:
    """Generate greedily, then measure block attention in one teacher-forced forward pass.

    ``lm`` is a ``tgsr.models.AudioLM``. With ``completion`` the given text (plus the
    end-of-turn token) is analysed instead of a fresh generation, e.g. a prediction from an
    evaluation run. Returns the per-token result (with phases) and the completion text.
    """
    inputs = lm.build_inputs([audio], [conversation])
    if completion is None:
        gen = lm.generate(inputs, max_new_tokens=max_new_tokens)
        ids = gen.completion_ids[0][gen.completion_mask[0].bool()]
    else:
        ids = torch.tensor(lm.tokenizer(completion, add_special_tokens=False)["input_ids"] + [lm.im_end_id])
    n = int(ids.shape[0])
    if n == 0:
        raise ValueError("the model generated no token")
    prompt = inputs["input_ids"]
    keep = inputs["attention_mask"][0].bool()
    if not bool(keep.all()):
        # a batch of one has no padding; drop any the adapter added all the same
        prompt = prompt[:, keep]
    P = prompt.shape[1]
    full = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "labels")}
    for k, v in full.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[:2] == inputs["input_ids"].shape:
            raise ValueError(f"input {k!r} is aligned with the text tokens; cannot extend it with the completion")
    full["input_ids"] = torch.cat([prompt, ids[None].to(prompt.device)], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    seq = full["input_ids"].shape[1]
    layout = partition_blocks(lm.token_blocks(full["input_ids"][0], n_generated=n), seq)
    text = lm.tokenizer.decode(ids.tolist(), skip_special_tokens=True)
    audio_positions = (full["input_ids"][0, :P] == lm.audio_token_id).nonzero().flatten().tolist()
    span_keys = cited_audio_keys(text, audio_positions, len(audio) / sample_rate, seq)
    # row P-1+i is the query that produced generated token i
    result = block_attention(lm.model, full, layout, (P - 1, P - 1 + n), chunk=chunk, span_keys=span_keys)
    if span_keys is not None:
        result.span_share = int(span_keys.sum()) / len(audio_positions)
    result.phases = token_phases(text, token_char_spans(lm.tokenizer, ids.tolist()))
    return result, text


def jobs_from_qa(examples, *, queries: Sequence[str] | None = None, prompt: str = "grounded",
                 teacher_force: str | None = None) -> list[AttentionJob]:
    """Jobs for QA items (their question with the reasoning prompt), or, with ``queries``,
    each query asked about each distinct clip (the probe setting). ``teacher_force`` names a
    QA field (``rationale`` or ``rationale_plain``) whose text is analysed instead of a
    generated completion: every model then reads the same reasoning."""
    from ..prompts import reasoning_question, user_messages

    if queries:
        clips = {}
        for ex in examples:
            clips.setdefault(ex.audio, ex.id)
        return [AttentionJob(id=f"{cid}#q{qi}", audio=audio, conversation=user_messages(q), query=q)
                for audio, cid in clips.items() for qi, q in enumerate(queries)]
    if teacher_force not in (None, "rationale", "rationale_plain"):
        raise ValueError(f"teacher_force must be rationale or rationale_plain, got {teacher_force!r}")
    return [AttentionJob(id=ex.id, audio=ex.audio, query=ex.question,
                         conversation=user_messages(reasoning_question(ex.question, ex.choices, prompt)),
                         completion=None if teacher_force is None else getattr(ex, teacher_force))
            for ex in examples]


def jobs_from_run(run_dir, data: str | None = None) -> list[AttentionJob]:
    """Jobs that re-read the completions of an evaluation run (own-audio runs only), so the
    attention is measured on exactly the outputs that were scored."""
    from ..errors import TgsrError
    from ..prompts import reasoning_question, user_messages
    from .behaviors import load_run

    preds, _, contexts, info = load_run(run_dir, data)
    if any(p.condition != "own" for p in preds):
        raise TgsrError(f"{run_dir}: attention is analysed on runs with the items' own audio "
                        "(this run used a listening control)")
    prompt = info.get("prompt", "grounded")
    jobs = []
    for p in preds:
        ctx = contexts[p.id]
        if not ctx.question or not ctx.choices or not ctx.audio:
            raise TgsrError(f"{run_dir}: item {p.id} has no question, choices or audio; pass --data QA_JSONL")
        jobs.append(AttentionJob(id=p.id, audio=ctx.audio, query=ctx.question,
                                 conversation=user_messages(reasoning_question(ctx.question, ctx.choices, prompt)),
                                 completion=p.completion if p.completion is not None else ""))
    return jobs


def run_attention(lm, jobs: Sequence[AttentionJob], out_dir, *, max_new_tokens: int = 128,
                  chunk: int = DEFAULT_CHUNK, progress: bool = True) -> dict:
    """Analyse every job, appending one record per item to ``out_dir/attention_items.jsonl``.

    Resumable (a ``tgsr.runlog.ItemLog``, the folder locked while it runs): items already in the
    file are skipped; other settings are refused. An item that fails (unreadable audio,
    empty generation ...) is recorded with its error and counted in the summary, and retried on
    resume. Returns the summary, also written to ``out_dir/attention_summary.json``.
    """
    from pathlib import Path

    from ..runlog import FolderLock

    out_dir = Path(out_dir)
    with FolderLock(out_dir):
        return _attention_items(lm, jobs, out_dir, max_new_tokens=max_new_tokens, chunk=chunk, progress=progress)


def _attention_items(lm, jobs: Sequence[AttentionJob], out_dir, *, max_new_tokens: int, chunk: int,
                     progress: bool) -> dict:
    import json
    import time

    from tqdm.auto import tqdm

    from ..audio import load_audio
    from ..runlog import ItemLog

    items = ItemLog(out_dir / "attention_items.jsonl", out_dir / "attention_settings.json",
                    what="attention results", hint="use another --out or --label")
    settings = {"model": str(getattr(lm, "name_or_path", "") or ""), "max_new_tokens": max_new_tokens}
    done = items.resume(settings)
    todo = items.pending(jobs, done)
    t0, n_ok = time.perf_counter(), 0
    for job in tqdm(todo, desc="attention", unit="item", disable=not progress, dynamic_ncols=True):
        rec: dict = {"id": job.id, "query": job.query}
        try:
            if job.completion == "":
                raise ValueError("the prediction has no completion")
            result, text = analyze_example(lm, load_audio(job.audio), job.conversation,
                                           max_new_tokens=max_new_tokens, chunk=chunk, completion=job.completion)
        except Exception as e:  # noqa: BLE001 - record the item, keep going
            rec["error"] = f"{type(e).__name__}: {e}"
        else:
            n_ok += 1
            rec.update(completion=text, n_generated=len(result.phases), blocks=result.layout.as_dict(),
                       accumulator=accumulate(result),
                       audio_mass=float(result.mass[:, :, 1].mean()),
                       max_block_sum_error=float((result.mass.sum(-1) - result.total).abs().max()))
        items.append(rec)
    seconds = time.perf_counter() - t0
    records = items.rows_for(j.id for j in jobs)
    ok = [r for r in records if "accumulator" in r]
    summary = summarize_accumulators([r["accumulator"] for r in ok])
    summary.update(n_items=len(jobs), n_failed=len(records) - len(ok),
                   failures=[{"id": r["id"], "error": r.get("error")} for r in records if "accumulator" not in r])
    (out_dir / "attention_summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    if progress and todo:
        print(f"attention: {n_ok}/{len(todo)} items analysed in {seconds:.1f}s "
              f"({n_ok / seconds if seconds else 0:.2f} items/s), {len(todo) - n_ok} failed")
    return summary


__all__ = [
    "BLOCKS", "PHASES", "PROBE_QUERIES", "BlockLayout", "BlockAttention", "partition_blocks",
    "block_attention", "block_attention_forward", "reduce_full_attentions", "recording",
    "decoder_attention_modules", "token_char_spans", "token_phases", "cited_audio_keys", "SPAN_GROUPS",
    "summarize", "summarize_accumulators", "accumulate", "table4_rows", "AttentionJob", "analyze_example",
    "jobs_from_qa", "jobs_from_run", "run_attention",
]
