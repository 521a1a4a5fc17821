"""Prompt building shared by training and inference (one source of truth)."""

from typing import Any

# LLaVA-1.5 conversation format, used when a processor ships no chat template.
LLAVA_FALLBACK = 'USER: <image>\n{question} ASSISTANT:'


def chat_prompt(processor: Any, question: str) -> str:
    """Text prompt for one image + one question, ending where the answer starts."""
    messages = [{'role': 'user',
                 'content': [{'type': 'image'}, {'type': 'text', 'text': question}]}]
    if getattr(processor, 'chat_template', None):
        return processor.apply_chat_template(messages, add_generation_prompt=True)
    return LLAVA_FALLBACK.format(question=question)
