"""Consistency judges: does the reasoning support the final answer? Scores in 0-1.

Three backends behind one interface, ``judge(question, choices, completion) -> Verdict``:

* ``rule`` (default, offline): the option the reasoning argues for -- its last mention of an
  option, by letter "(b)" / "option b" or by choice text, skipping negated mentions ("not
  (a)") -- against the final letter. 1 if they agree, 0 if not; no verdict (``score=None``,
  with a reason) when the reasoning names no option or there is no final letter.
* ``openai:MODEL@BASE_URL``: any OpenAI-compatible chat endpoint (the paper used Qwen3-32B),
  called over plain HTTP; the API key, if needed, comes from ``TGSR_JUDGE_API_KEY`` or
  ``OPENAI_API_KEY``.
* ``hf:PATH``: a local transformers causal LM with a chat template, greedy decoding.

The two model judges get the prompt in ``tgsr/assets/judge_prompt.txt`` and must end with
``Score: <number>``; a reply without one is recorded as no verdict with the raw reply.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from typing import Sequence

from ..errors import TgsrError
from ..records import LETTERS

__all__ = ["Verdict", "Judge", "RuleJudge", "OpenAIJudge", "HFJudge", "get_judge", "judge_prompt",
           "split_reasoning", "argued_option", "parse_score"]


@dataclass
class Verdict:
    score: float | None          # 0-1, None when the judge gives no verdict
    reason: str = ""             # why (rule judge) or the raw reply (model judges)
    argued: str | None = None    # rule judge: the letter the reasoning argues for


def judge_prompt_template() -> str:
    return resources.files("tgsr").joinpath("assets/judge_prompt.txt").read_text(encoding="utf-8")


def split_reasoning(completion: str) -> tuple[str, str]:
    """(reasoning, final line): the final line is the last non-empty line."""
    text = completion.rstrip()
    nl = text.rfind("\n")
    if nl < 0:
        return "", text.strip()
    return text[:nl].strip(), text[nl + 1:].strip()


def judge_prompt(question: str, choices: Sequence[str], completion: str) -> str:
    reasoning, final = split_reasoning(completion)
    return judge_prompt_template().format(
        question=question.strip() or "(not given)",
        choices="\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)) or "(not given)",
        reasoning=reasoning or "(none)", final_answer=final or "(none)")


_SCORE = re.compile(r"score\s*[:=]\s*([01](?:\.\d+)?|\.\d+)", re.IGNORECASE)


def parse_score(reply: str) -> float | None:
    """The last ``Score: x`` in a reply, clamped to 0-1; None if there is none."""
    found = _SCORE.findall(reply or "")
    if not found:
        return None
    return min(1.0, max(0.0, float(found[-1])))


_NEGATION = re.compile(r"\b(?:not|isn't|is not|rather than|instead of|rule out|rules out|unlike|never)\W{1,3}"
                       r"(?:\w+\W{1,3}){0,2}$", re.IGNORECASE)


def _negated(text: str, start: int) -> bool:
    """Whether the mention at ``start`` is negated within its own clause ("not (a)")."""
    window = text[max(0, start - 40):start]
    cut = max(window.rfind(c) for c in ".;,!?\n")
    return bool(_NEGATION.search(window[cut + 1:]))


def argued_option(reasoning: str, choices: Sequence[str]) -> tuple[str | None, str]:
    """The letter the reasoning argues for (its last non-negated option mention), and why."""
    letters = LETTERS[: len(choices)]
    mentions: list[tuple[int, int, str]] = []     # (end, -length, letter)
    for m in re.finditer(r"[(\[]\s?([a-z])\s?[)\]]|\b(?:option|choice)\s?([a-z])\b",
                         reasoning, re.IGNORECASE):
        letter = (m.group(1) or m.group(2)).lower()
        if letter in letters:
            mentions.append((m.start(), m.end(), letter))
    low = reasoning.lower()
    # longest choice texts first, so "the second speaker" is not also read as a shorter choice
    order = sorted(range(len(choices)), key=lambda i: -len(choices[i]))
    taken: list[tuple[int, int]] = []
    for i in order:
        c = choices[i].strip().lower()
        if not c:
            continue
        for m in re.finditer(r"(?<!\w)" + re.escape(c) + r"(?!\w)", low):
            if any(m.start() < e and m.end() > s for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            mentions.append((m.start(), m.end(), letters[i]))
    kept = [(s, e, letter) for s, e, letter in mentions if not _negated(reasoning, s)]
    if not kept:
        return None, "the reasoning mentions no option" if not mentions else "the reasoning only rules options out"
    s, e, letter = max(kept, key=lambda t: (t[1], t[1] - t[0]))
    return letter, f"last mention: {reasoning[s:e]!r}"


class Judge:
    name = "judge"

    def judge(self, question: str, choices: Sequence[str], completion: str,
              final_letter: str | None = None) -> Verdict:
        raise NotImplementedError


class RuleJudge(Judge):
    name = "rule"

    def judge(self, question, choices, completion, final_letter=None):
        from ..answers import extract_choice

        reasoning, _ = split_reasoning(completion or "")
        if final_letter is None:
            final_letter = extract_choice(completion or "", list(choices)).letter
        if final_letter is None:
            return Verdict(None, "no final answer letter")
        argued, why = argued_option(reasoning, choices)
        if argued is None:
            return Verdict(None, why)
        return Verdict(1.0 if argued == final_letter.lower() else 0.0, why, argued)


class _ModelJudge(Judge):
    def complete(self, prompt: str) -> str:
        raise NotImplementedError

    def judge(self, question, choices, completion, final_letter=None):
        reply = self.complete(judge_prompt(question, choices, completion or ""))
        score = parse_score(reply)
        return Verdict(score, reply if score is not None else f"no 'Score:' line in reply: {reply[:300]!r}")


class OpenAIJudge(_ModelJudge):
    """An OpenAI-compatible ``/chat/completions`` endpoint over plain HTTP (urllib)."""

    def __init__(self, model: str, base_url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 max_tokens: int = 256):
        self.name = f"openai:{model}@{base_url}"
        self.model, self.base_url = model, base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("TGSR_JUDGE_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.timeout, self.max_tokens = timeout, max_tokens

    def complete(self, prompt: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "temperature": 0.0, "max_tokens": self.max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            raise TgsrError(f"judge endpoint {self.base_url}: HTTP {e.code}: "
                            f"{e.read().decode(errors='replace')[:200]}") from None
        except (urllib.error.URLError, OSError) as e:
            raise TgsrError(f"judge endpoint {self.base_url}: {e}") from None
        except json.JSONDecodeError as e:
            raise TgsrError(f"judge endpoint {self.base_url}: reply is not JSON ({e.msg})") from None
        try:
            return data["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise TgsrError(f"judge endpoint {self.base_url}: unexpected reply {str(data)[:200]}") from None


class HFJudge(_ModelJudge):
    """A local transformers causal LM (chat template, greedy decoding)."""

    def __init__(self, path: str, *, max_new_tokens: int = 128, device: str = "auto", dtype: str | None = None):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..models.hub import resolve_model_path
        from ..models.placement import choose_placement

        self.name = f"hf:{path}"
        folder = resolve_model_path(path, what="judge model")
        where = choose_placement(device, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            self.model = AutoModelForCausalLM.from_pretrained(folder, dtype=where.dtype,
                                                              device_map=where.device_map).eval()
        except (OSError, ValueError) as e:  # a wrong path is a user error, not a traceback
            raise TgsrError(f"judge hf:{path}: cannot load a causal LM: {e}") from None
        self.max_new_tokens = max_new_tokens

    def complete(self, prompt: str) -> str:
        import torch

        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                           add_generation_prompt=True)
        else:
            text = prompt + "\n"
        enc = tok(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id or tok.eos_token_id)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def get_judge(spec: str | None, *, device: str = "auto", dtype: str | None = None) -> Judge:
    """``rule`` | ``openai:MODEL@BASE_URL`` | ``hf:PATH`` (a folder or hub id, placed by ``device``)."""
    spec = (spec or "rule").strip()
    if spec == "rule":
        return RuleJudge()
    if spec.startswith("openai:"):
        rest = spec[len("openai:"):]
        model, sep, url = rest.partition("@")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise TgsrError(f"judge spec {spec!r}: expected openai:MODEL@http(s)://HOST[:PORT]/v1")
        return OpenAIJudge(model, url)
    if spec.startswith("hf:"):
        path = spec[3:]
        if not path:
            raise TgsrError(f"judge spec {spec!r}: expected hf:PATH")
        return HFJudge(path, device=device, dtype=dtype)
    raise TgsrError(f"unknown judge {spec!r}; expected rule, openai:MODEL@URL or hf:PATH")
