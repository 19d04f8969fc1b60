"""tgsr.train.decoding: one prefill per prompt and compiled decoding give what plain generate gives."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig
from transformers.generation import CompileConfig

from tgsr.errors import TgsrError
from tgsr.train.decoding import SamplingLogprobs, prompt_groups, sample

FAMILIES = ["qwen2.5-omni", "qwen2-audio", "audio-flamingo-3"]


class CountingBackend:
    """A torch.compile backend that runs the captured graph eagerly and counts the graphs (a plain
    function, since generate deep-copies its config and an object would count in its copy)."""

    def __init__(self):
        self.captured: list[int] = []

        def backend(gm, example_inputs):
            self.captured.append(len(gm.graph.nodes))
            return gm.forward

        self.backend = backend

    @property
    def graphs(self) -> int:
        return len(self.captured)


def eager_compile(backend: CountingBackend) -> CompileConfig:
    config = CompileConfig(backend=backend.backend, mode=None, fullgraph=False)
    config._compile_all_devices = True  # transformers compiles on accelerators only unless told
    return config


def test_prompt_groups_first_rows_and_index():
    first, index = prompt_groups(["a", "a", "b", "a", "c", "b"])
    assert first == [0, 2, 4]
    assert index.tolist() == [0, 0, 1, 0, 2, 1]
    first, index = prompt_groups(["x", "y"])
    assert first == [0, 1] and index.tolist() == [0, 1]


def _batch(model_dir, toy_corpus, g: int):
    """3 prompts x g rows, grouped as TRL's sampler yields them, plus the prompts' own audio."""
    from tgsr.audio import load_audio
    from tgsr.models import load_model
    from tgsr.train.datasets import clean_conversation, grpo_rows

    lm = load_model(str(model_dir))
    lm.model.eval()
    rows = grpo_rows(str(toy_corpus / "train" / "qa.jsonl"), "direct").rows[:3]
    feats = [lm.featurize_one(load_audio(r["audio"])) for r in rows]
    convs = [clean_conversation(r["prompt"]) for r in rows]
    enc = lm.build_inputs([f for f in feats for _ in range(g)], [c for c in convs for _ in range(g)],
                          add_generation_prompt=True)
    audio = {k: enc[k] for k in lm.audio_keys if k in enc}
    groups = prompt_groups([i for i in range(len(rows)) for _ in range(g)])
    unique_audio = lm.collate_audio(feats)
    return lm, enc["input_ids"], enc["attention_mask"], audio, groups, unique_audio


def _greedy(lm, n_new=8, **extra):
    return GenerationConfig(max_new_tokens=n_new, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id,
                            eos_token_id=list(lm.eos_token_ids), **extra)


def _sampled(lm, n_new=8):
    """Sampling at T = 1: every row draws its own tokens (an untrained model is too flat for greedy
    decoding to tell prompts apart); the same seed gives the same draws when the logits agree."""
    return GenerationConfig(max_new_tokens=n_new, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                            pad_token_id=lm.tokenizer.pad_token_id, eos_token_id=list(lm.eos_token_ids))


@pytest.mark.parametrize("family", FAMILIES)
def test_shared_prefill_and_compiled_decoding_give_the_same_tokens(family, tiny_model_dir, toy_corpus):
    lm, ids, mask, audio, groups, unique_audio = _batch(tiny_model_dir(family), toy_corpus, g=2)
    config = _sampled(lm)
    suppress = list(lm.suppress_token_ids)
    runs = {}
    backend = CountingBackend()
    with torch.no_grad():
        for name, share, compiled in [("plain", False, False), ("shared", True, False),
                                      ("compiled", False, True), ("shared+compiled", True, True)]:
            recorder = SamplingLogprobs(1.0)
            torch.manual_seed(0)
            out = sample(lm.model, ids, mask, audio=audio, generation_config=config, suppress_tokens=suppress,
                         groups=groups if share else None, unique_audio=unique_audio if share else None,
                         compile_decoding=compiled, compile_config=eager_compile(backend) if compiled else None,
                         recorder=recorder)
            n_new = out.sequences.size(1) - ids.size(1)
            runs[name] = (out.sequences, recorder.finish(out.sequences, n_new))
    plain_tokens, plain_lp = runs["plain"]
    # every row drew its own completion, or a row given another row's prefill could go unnoticed
    assert len({tuple(r) for r in plain_tokens[:, ids.size(1):].tolist()}) == ids.size(0)
    for name, (tokens, lp) in runs.items():
        assert torch.equal(tokens, plain_tokens), name
        assert (lp - plain_lp).abs().max().item() < 1e-4, name
    assert backend.graphs > 0  # the decode step did go through torch.compile


def test_recorded_logprobs_are_the_raw_distribution_not_the_suppressed_one(tiny_omni_dir, toy_corpus):
    """Suppression is applied after the recorder: it sees the placeholders' raw logits, finite."""
    lm, ids, mask, audio, _, _ = _batch(tiny_omni_dir, toy_corpus, g=1)
    suppress = list(lm.suppress_token_ids)
    seen = []

    class Spy(SamplingLogprobs):
        def __call__(self, input_ids, scores):
            seen.append(bool(torch.isfinite(scores[:, suppress]).all()))
            return super().__call__(input_ids, scores)

    recorder = Spy(0.8)
    with torch.no_grad():
        out = sample(lm.model, ids, mask, audio=audio, generation_config=_greedy(lm, 4),
                     suppress_tokens=suppress, recorder=recorder)
    generated = out.sequences[:, ids.size(1):]
    assert not torch.isin(generated, torch.tensor(suppress)).any()
    assert seen and all(seen)
    assert recorder.prev is not None  # still holding the last step, until finish()
    lp = recorder.finish(out.sequences, generated.size(1))
    assert torch.isfinite(lp).all()


def test_logit_changing_options_are_refused_while_the_guard_records(tiny_omni_dir, toy_corpus):
    lm, ids, mask, audio, _, _ = _batch(tiny_omni_dir, toy_corpus, g=1)
    with pytest.raises(TgsrError, match="repetition_penalty"):
        sample(lm.model, ids, mask, audio=audio, generation_config=_greedy(lm, 2, repetition_penalty=1.3),
               recorder=SamplingLogprobs(1.0))
    with torch.no_grad():  # without the recorder the option is the user's to choose
        sample(lm.model, ids, mask, audio=audio, generation_config=_greedy(lm, 2, repetition_penalty=1.3))


def test_trainer_samples_with_shared_prefill_and_compiled_decoding_at_parity(tiny_model_dir, toy_corpus, tmp_path):
    """Inside a generation batch of the trainer: sampling log-probs equal the training pass's (fp32).
    The Omni thinker: its per-row rotary offsets are the state a shared prefill must copy too (the
    other families' rows are checked by the same parity inside tests/test_train_grpo.py, where
    sharing is the default)."""
    family = "qwen2.5-omni"
    from test_train_grpo import _trainer

    backend = CountingBackend()
    trainer, rows = _trainer(tiny_model_dir(family), toy_corpus, tmp_path, n_rows=6, logprob_check_steps=100)
    trainer.share_prefill, trainer.compile_decoding = True, True
    trainer.compile_config = eager_compile(backend)
    prefills = []
    handle = trainer.model.register_forward_pre_hook(
        lambda m, a, kw: prefills.append(kw["input_ids"].shape) if kw.get("input_ids") is not None
        and kw["input_ids"].size(1) > 1 else None, with_kwargs=True)
    batch = [dict(rows[i]) for i in range(3) for _ in range(2)]
    try:
        out = trainer._generate_and_score_completions(batch)
    finally:
        handle.remove()
    check = trainer.last_logprob_check
    gap = (check["policy"].float() - check["sampling"].float()).abs()[check["mask"]].max().item()
    assert gap < 1e-5
    assert backend.graphs > 0
    # generation prefilled the 3 prompts once (the later passes score whole sequences of 6 rows)
    assert prefills[0][0] == 3
    assert [r.path for r in out["audio_rows"]] == [r["audio"] for r in batch]
