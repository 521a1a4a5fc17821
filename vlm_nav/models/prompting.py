# Copyright 2026 vlm_nav maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""Prompt building shared by training and inference (one source of truth)."""

from typing import Any

# LLaVA-1.5 conversation format, used when a processor ships no chat template.
LLAVA_FALLBACK = 'USER: <image>\n{question} ASSISTANT:'


def chat_prompt(processor: Any, question: str, template: str = LLAVA_FALLBACK) -> str:
    """
    Build the text prompt for one image + one question, ending where the answer starts.

    The processor's chat template wins; ``template`` (the family's, from the registry,
    with '{question}') is used when it has none (BLIP-2, InstructBLIP checkpoints).
    """
    messages = [{'role': 'user',
                 'content': [{'type': 'image'}, {'type': 'text', 'text': question}]}]
    if getattr(processor, 'chat_template', None):
        return processor.apply_chat_template(messages, add_generation_prompt=True)
    return template.format(question=question)


def chat_template_for(template: str) -> str:
    """
    Build a Jinja chat template that renders one user turn exactly as ``template`` does.

    It gives small test models the chat template of the family they imitate, so
    the processor path (apply_chat_template) is the one real checkpoints take.
    """
    head, tail = template.split('{question}')
    image_at = head.find('<image>')
    if image_at < 0:
        before, after = head, ''
    else:
        before, after = head[:image_at], head[image_at + len('<image>'):]

    def lit(text: str) -> str:
        return '{{ ' + repr(text) + ' }}' if text else ''

    return (
        "{% for message in messages %}{% if message['role'] == 'user' %}" + lit(before)
        + "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
        + ("{{ '<image>' }}" + lit(after) if image_at >= 0 else '')
        + "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
        + '{% endif %}{% endfor %}'
        + '{% if add_generation_prompt %}' + lit(tail) + '{% endif %}')
