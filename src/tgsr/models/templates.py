"""Chat templates: the family templates tgsr ships, and the probe that picks a checkpoint's.

A real checkpoint folder can carry several templates, and they do not all render audio:

- Qwen2-Audio-7B-Instruct's tokenizer has the text-only Qwen2 template
  (``'<|im_start|>' + role + '\\n' + message['content']``): a user turn whose content is a list
  raises ``TypeError``; its processor-era template keys on ``'audio' in content`` and renders no
  placeholder for tgsr's ``{"type": "audio"}`` items. Only the processor's built-in default
  renders them.
- Audio Flamingo 3 (hf): the tokenizer template is text-only too; the processor's
  ``chat_template.jinja`` renders ``<sound>``.
- Qwen2.5-Omni: the hub template keys on ``content['type'] == 'audio'`` and works.

So the template is not taken on trust: ``select_chat_template`` renders one probe turn (system,
then a user turn with one audio item and a question) with each candidate, in the order
transformers itself would use them, and keeps the first that yields exactly one audio
placeholder and the question text. The choice and its source are logged and kept on the
``AudioLM`` (``chat_template_source``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

# ChatML templates in each family's style. They branch on content["type"] because
# `datasets` fills missing keys with None.
_TEMPLATE = (
    "{%- set audio_count = namespace(value=0) -%}"
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'audio' -%}{%- set audio_count.value = audio_count.value + 1 -%}AUDIO_SLOT"
    "{%- elif item['type'] == 'text' -%}{{- item['text'] -}}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)
_AUDIO_SLOT = {
    "qwen2.5-omni": "{{- '<|audio_bos|><|AUDIO|><|audio_eos|>' -}}",
    "qwen2-audio": "{{- 'Audio ' + audio_count.value|string + ': <|audio_bos|><|AUDIO|><|audio_eos|>\\n' -}}",
    "audio-flamingo-3": "{{- '<sound>' -}}",
    "qwen3-omni": "{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}",
}

PROBE_QUESTION = "tgsr template probe: who speaks first?"


def family_template(family: str) -> str:
    """tgsr's own ChatML template for ``family`` (used by tiny models, and as the last fallback)."""
    return _TEMPLATE.replace("AUDIO_SLOT", _AUDIO_SLOT[family])


@dataclass(frozen=True)
class TemplateChoice:
    template: str
    source: str                    # e.g. "chat_template.jinja", "tokenizer_config.json", "tgsr family template"
    rejected: tuple[str, ...] = ()  # "<source>: <why>" for each candidate tried before it


def _processor_template_files(folder: str | None) -> list[tuple[str, str]]:
    """The processor's template files in a checkpoint folder (what ``AutoProcessor`` loads)."""
    if not folder or not Path(folder).is_dir():
        return []
    out = []
    jinja = Path(folder) / "chat_template.jinja"
    if jinja.is_file():
        out.append(("chat_template.jinja", jinja.read_text(encoding="utf-8")))
    js = Path(folder) / "chat_template.json"
    if js.is_file():
        try:
            text = json.loads(js.read_text(encoding="utf-8")).get("chat_template")
        except (json.JSONDecodeError, AttributeError):
            text = None
        if isinstance(text, str) and text:
            out.append(("chat_template.json", text))
    return out


def candidates(folder: str | None, tokenizer, family: str, processor_class=None) -> list[tuple[str, str]]:
    """Candidate templates, best first: processor files, the tokenizer's own, the processor class's
    built-in default, tgsr's family template. Duplicates (same text) are kept once."""
    found = _processor_template_files(folder)
    tok_template = getattr(tokenizer, "chat_template", None)
    if isinstance(tok_template, str) and tok_template:
        found.append(("tokenizer_config.json", tok_template))
    default = getattr(processor_class, "default_chat_template", None) if processor_class is not None else None
    if isinstance(default, property):  # a property on the class: read it from a bare instance
        try:
            default = default.fget(object.__new__(processor_class))
        except Exception:  # noqa: BLE001 - a default that cannot be read is simply not a candidate
            default = None
    if isinstance(default, str) and default:
        found.append((f"{processor_class.__name__}.default_chat_template", default))
    found.append(("tgsr family template", family_template(family)))
    seen, out = set(), []
    for source, text in found:
        if text not in seen:
            seen.add(text)
            out.append((source, text))
    return out


def probe_conversation(system_prompt: str | None) -> list[dict]:
    conv = [{"role": "user", "content": [{"type": "audio"}, {"type": "text", "text": PROBE_QUESTION}]}]
    if system_prompt:
        conv.insert(0, {"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    return conv


def check_template(render: Callable[[str], str], template: str, audio_token: str) -> str | None:
    """Why ``template`` cannot render tgsr's audio turns, or None when it can."""
    try:
        text = render(template)
    except Exception as e:  # noqa: BLE001 - any template error disqualifies it; the reason is reported
        return f"{type(e).__name__}: {e}"
    n = text.count(audio_token)
    if n != 1:
        return f"rendered {n} {audio_token} placeholders for one clip"
    if PROBE_QUESTION not in text:
        return "dropped the question text"
    return None


def select_chat_template(folder: str | None, tokenizer, family: str, audio_token: str, *,
                         system_prompt: str | None, processor_class=None, name: str = "") -> TemplateChoice:
    """The first candidate that renders one audio turn with exactly one placeholder (see module doc)."""
    conv = probe_conversation(system_prompt)

    def render(template: str) -> str:
        return tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=True,
                                             chat_template=template)

    rejected = []
    for source, template in candidates(folder, tokenizer, family, processor_class):
        why = check_template(render, template, audio_token)
        if why is None:
            if rejected:
                log.warning("%s: chat template from %s (rejected: %s)", name or folder, source, "; ".join(rejected))
            else:
                log.info("%s: chat template from %s", name or folder, source)
            return TemplateChoice(template, source, tuple(rejected))
        rejected.append(f"{source}: {why}")
    # The family template renders by construction; reaching here means the tokenizer lacks its tokens.
    from ..errors import TgsrError

    raise TgsrError(f"{name or folder}: no chat template renders an audio turn: {'; '.join(rejected)}")


__all__ = ["PROBE_QUESTION", "TemplateChoice", "candidates", "check_template", "family_template",
           "probe_conversation", "select_chat_template"]
