"""Supported model families: which transformers classes load them and how to drive them.

Kept small on purpose; no weights are touched here (memory is estimated on the
``meta`` device from the config alone).
"""

from dataclasses import dataclass
from typing import Any, FrozenSet, Tuple

DTYPES = ('float32', 'bfloat16', 'float16')


@dataclass(frozen=True)
class Family:
    """How one family of image-text-to-text models is loaded and prompted."""

    name: str
    model_types: Tuple[str, ...]      # config.model_type values ('*' = any VLM)
    model_class: str                  # transformers class used by from_pretrained
    processor_class: str
    prompt_notes: str
    operations: FrozenSet[str]
    # Image tokens sit before the question and positions are plain 1-D (RoPE), so one
    # prefill of the shared prefix (image included) can be reused by all questions.
    shared_prefix: bool


LLAVA = Family(
    name='llava', model_types=('llava',), model_class='LlavaForConditionalGeneration',
    processor_class='AutoProcessor',
    prompt_notes="'USER: <image>\\n{q} ASSISTANT:'; the answer follows after a space.",
    operations=frozenset({'score', 'generate'}), shared_prefix=True)

LLAVA_PHI3 = Family(
    name='llava-phi3', model_types=('llava',), model_class='LlavaForConditionalGeneration',
    processor_class='AutoProcessor',
    prompt_notes=("'<|user|>\\n<image>\\n{q}<|end|>\\n<|assistant|>\\n'; the answer follows "
                  'the newline with no leading space.'),
    operations=frozenset({'score', 'generate'}), shared_prefix=True)

IDEFICS3 = Family(
    name='idefics3', model_types=('idefics3', 'smolvlm'),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_notes=("'<|im_start|>User:<image>{q}<end_of_utterance>\\nAssistant:'; the answer "
                  'follows after a space. Disable image splitting for small inputs.'),
    operations=frozenset({'score', 'generate'}), shared_prefix=True)

GENERIC = Family(
    name='generic', model_types=('*',), model_class='AutoModelForImageTextToText',
    processor_class='AutoProcessor',
    prompt_notes=("The processor's chat template; positions may be multimodal (e.g. "
                  'M-RoPE), so every question is run in full with the image.'),
    operations=frozenset({'score', 'generate'}), shared_prefix=False)

FAMILIES = (LLAVA, LLAVA_PHI3, IDEFICS3, GENERIC)


def image_text_to_text_types() -> FrozenSet[str]:
    """config.model_type values transformers can load as image-text-to-text models."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    return frozenset(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def is_image_text_to_text(config: Any) -> bool:
    return getattr(config, 'model_type', None) in image_text_to_text_types()


def family_for(config: Any) -> Family:
    """Return the family of a config; GENERIC for any other image-text-to-text model."""
    model_type = getattr(config, 'model_type', None)
    if model_type == 'llava':
        text_type = getattr(getattr(config, 'text_config', None), 'model_type', None)
        return LLAVA_PHI3 if text_type == 'phi3' else LLAVA
    if model_type in IDEFICS3.model_types:
        return IDEFICS3
    return GENERIC


def model_class(config: Any):
    """Return the transformers class that loads this config."""
    import transformers
    return getattr(transformers, family_for(config).model_class)


def torch_dtype(name: str):
    import torch
    if name not in DTYPES:
        raise ValueError(f"unknown dtype '{name}'; use one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def _meta_model(config: Any):
    import torch
    # The meta device allocates nothing, so this is cheap even for multi-billion models.
    with torch.device('meta'):
        return model_class(config)._from_config(config)


def parameter_count(config: Any) -> int:
    """Parameters of the model a config describes (tied weights counted once)."""
    return int(sum(p.numel() for p in _meta_model(config).parameters()))


def estimate_memory_bytes(config: Any, dtype: str) -> int:
    """Bytes the weights and floating buffers take in ``dtype`` (no activations, no KV cache)."""
    import torch
    element = torch.empty((), dtype=torch_dtype(dtype)).element_size()
    model = _meta_model(config)
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return int(n) * element
