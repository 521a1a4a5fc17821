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

"""
Supported model families: which transformers classes load them and how to drive them.

Everything a backend needs to know about a family is data here: which configs belong to
it (``model_type``, the text model's type, the saved architecture), the classes, the
prompt template, which operations it offers and which backend drives it. ``family_for``
walks ``FAMILIES`` in order and returns the first match, so picking a family is a table
lookup, not code. No weights are touched here: memory is estimated on the ``meta``
device from the config alone.
"""

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Optional, Tuple

DTYPES = ('float32', 'bfloat16', 'float16')
# What a model can be loaded as: a torch dtype, or 'int8' (torch dynamic quantization of
# the Linear layers' weights, activations in float32; CPU only).
PRECISIONS = DTYPES + ('int8',)

# Operations a backend may offer (the services map onto them).
DESCRIBE = 'describe'   # free-text scene description (Describe service)
ASK = 'ask'             # free-text answer to a question (Ask without choices)
SCORE = 'score'         # probabilities over given choices (Ask with choices, Observe)
MATCH = 'match'         # yes/no "is there a {thing}?" from an image-text matching head
OBSERVE = 'observe'     # the navigator's target questions: visible, bearing, distance, path
GENERATIVE_OPS = frozenset({DESCRIBE, ASK, SCORE, OBSERVE})

# Which backend class drives a family (see vlm_nav.models.load_backend).
GENERATIVE = 'generative'     # next-token likelihoods and greedy generation
CONTRASTIVE = 'contrastive'   # image-text similarity / matching: scores only

# Text tokens a request adds to the image tokens, for the KV-cache estimate.
TEXT_TOKENS = 128


@dataclass(frozen=True)
class Family:
    """How one family of vision-language models is loaded and prompted."""

    name: str
    title: str                          # what the README calls it
    model_types: Tuple[str, ...]        # config.model_type values ('*' = any image-text-to-text)
    model_class: str                    # transformers class used by from_pretrained
    processor_class: str
    # One user turn with an image; '{question}' marks the question. Used when the
    # processor ships no chat template (tiny builders render it as one).
    prompt_template: str
    operations: FrozenSet[str]
    backend: str = GENERATIVE
    text_model_types: Tuple[str, ...] = ()   # config.text_config.model_type; () = any
    architectures: Tuple[str, ...] = ()      # one must be in config.architectures; () = any
    # Image tokens sit before the question and positions are plain 1-D (RoPE), so one
    # prefill of the shared prefix (image included) can be reused by all questions. The
    # flags below share it too, each in its own way (``shares_prefix``).
    shared_prefix: bool = False
    # The image encoder reads the question too (InstructBLIP's Q-Former): image inputs
    # differ per question, so questions are scored one at a time.
    image_reads_question: bool = False
    # Left-padded rows may be given plain 1-D position ids (RoPE language models).
    position_ids: bool = False
    # Multimodal RoPE (Qwen2.5-VL, Qwen3-VL): positions are (temporal, height, width)
    # triples from the model's own get_rope_index; the packed pass gives each question's
    # tail the triples it has in its own prompt.
    mrope: bool = False
    # Image tokens attend to each other both ways (Gemma 3): the packed mask opens the
    # image block in the prefix, as the model's own mask does.
    bidirectional_image: bool = False
    # Layers that are not attention (LFM2's short convolutions) mix each token with the
    # ones before it whatever the mask says, so questions cannot share one packed
    # sequence: the prefix is prefilled once and the tails run as one batch over its cache.
    unmaskable_layers: bool = False
    # What vlm_node's max_image_pixels sets in the image processor ('' = fixed
    # resolution): 'pixels' (Qwen's size.longest_edge, max_pixels), 'longest_edge'
    # (Idefics3/SmolVLM: sqrt of the budget), 'image_tokens' (LFM2-VL's max_image_tokens).
    image_budget: str = ''
    # Contrastive families: the text each choice becomes.
    choice_template: str = ''
    examples: Tuple[str, ...] = ()           # hub ids of this family

    def matches(self, config: Any) -> bool:
        model_type = getattr(config, 'model_type', None)
        if self.model_types == ('*',):
            if model_type not in image_text_to_text_types():
                return False
        elif model_type not in self.model_types:
            return False
        if self.text_model_types:
            text_type = getattr(getattr(config, 'text_config', None), 'model_type', None)
            if text_type not in self.text_model_types:
                return False
        if self.architectures:
            if not set(self.architectures) & set(getattr(config, 'architectures', None) or ()):
                return False
        return True

    def prompt(self, question: str) -> str:
        return self.prompt_template.format(question=question)

    @property
    def shares_prefix(self) -> bool:
        """Tell whether one prefill of the image and the prompt's start serves all questions."""
        return (self.shared_prefix or self.mrope or self.bidirectional_image
                or self.unmaskable_layers)

    @property
    def packs(self) -> bool:
        """Tell whether all questions can run as one packed sequence under a block mask."""
        return self.shares_prefix and not self.unmaskable_layers


LLAVA_PHI3 = Family(
    name='llava-phi3', title='LLaVA-Phi-3-mini', model_types=('llava',),
    text_model_types=('phi3',), model_class='LlavaForConditionalGeneration',
    processor_class='AutoProcessor',
    prompt_template='<|user|>\n<image>\n{question}<|end|>\n<|assistant|>\n',
    operations=GENERATIVE_OPS, shared_prefix=True, position_ids=True,
    examples=('xtuner/llava-phi-3-mini-hf',))

BAKLLAVA = Family(
    name='bakllava', title='BakLLaVA (Mistral-7B)', model_types=('llava',),
    text_model_types=('mistral',), model_class='LlavaForConditionalGeneration',
    processor_class='AutoProcessor', prompt_template='USER: <image>\n{question}\nASSISTANT:',
    operations=GENERATIVE_OPS, shared_prefix=True, position_ids=True,
    examples=('llava-hf/bakLlava-v1-hf',))

# Any other LLaVA (Vicuna/Llama text model, or one of the small ones built here).
LLAVA = Family(
    name='llava', title='LLaVA-1.5 (7B/13B)', model_types=('llava',),
    model_class='LlavaForConditionalGeneration', processor_class='AutoProcessor',
    prompt_template='USER: <image>\n{question} ASSISTANT:',
    operations=GENERATIVE_OPS, shared_prefix=True, position_ids=True,
    examples=('llava-hf/llava-1.5-7b-hf', 'llava-hf/llava-1.5-13b-hf'))

# A Blip2 checkpoint is either generative (vision + Q-Former + LM) or a retrieval one
# (Q-Former text side + ITM head, no LM); the saved architecture says which.
BLIP2_ITM = Family(
    name='blip-2-itm', title='BLIP-2 image-text matching', model_types=('blip-2',),
    architectures=('Blip2ForImageTextRetrieval',), model_class='Blip2ForImageTextRetrieval',
    processor_class='Blip2Processor', prompt_template='{question}',
    operations=frozenset({SCORE, MATCH}), backend=CONTRASTIVE,
    choice_template='a photo of a {choice}', examples=('Salesforce/blip2-itm-vit-g',))

BLIP2 = Family(
    name='blip-2', title='BLIP-2 (OPT)', model_types=('blip-2',),
    model_class='Blip2ForConditionalGeneration', processor_class='Blip2Processor',
    prompt_template='Question: {question} Answer:', operations=GENERATIVE_OPS,
    examples=('Salesforce/blip2-opt-2.7b', 'Salesforce/blip2-opt-6.7b'))

INSTRUCTBLIP = Family(
    name='instructblip', title='InstructBLIP (MiniGPT-4 class)', model_types=('instructblip',),
    model_class='InstructBlipForConditionalGeneration',
    processor_class='InstructBlipProcessor', prompt_template='{question}',
    operations=GENERATIVE_OPS, image_reads_question=True, position_ids=True,
    examples=('Salesforce/instructblip-vicuna-7b',))

CLIP = Family(
    name='clip', title='CLIP zero-shot', model_types=('clip',), model_class='CLIPModel',
    processor_class='CLIPProcessor', prompt_template='{question}',
    operations=frozenset({SCORE}), backend=CONTRASTIVE,
    choice_template='a photo of a {choice}',
    examples=('openai/clip-vit-base-patch32', 'openai/clip-vit-large-patch14'))

IDEFICS3 = Family(
    name='idefics3', title='SmolVLM / Idefics3', model_types=('idefics3',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template='<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant:',
    operations=GENERATIVE_OPS, shared_prefix=True, position_ids=True,
    image_budget='longest_edge', examples=('HuggingFaceTB/SmolVLM-256M-Instruct',))

SMOLVLM = Family(
    name='smolvlm', title='SmolVLM2', model_types=('smolvlm',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template='<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant:',
    operations=GENERATIVE_OPS, shared_prefix=True, position_ids=True,
    image_budget='longest_edge',
    examples=('HuggingFaceTB/SmolVLM2-256M-Video-Instruct',
              'HuggingFaceTB/SmolVLM2-2.2B-Instruct'))

QWEN2_5_VL = Family(
    name='qwen2_5_vl', title='Qwen2.5-VL', model_types=('qwen2_5_vl',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template=('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                     '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>'
                     '{question}<|im_end|>\n<|im_start|>assistant\n'),
    operations=GENERATIVE_OPS, mrope=True, image_budget='pixels',
    examples=('Qwen/Qwen2.5-VL-3B-Instruct', 'Qwen/Qwen2.5-VL-7B-Instruct'))

QWEN3_VL = Family(
    name='qwen3_vl', title='Qwen3-VL', model_types=('qwen3_vl',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template=('<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>'
                     '{question}<|im_end|>\n<|im_start|>assistant\n'),
    operations=GENERATIVE_OPS, mrope=True, image_budget='pixels',
    examples=('Qwen/Qwen3-VL-2B-Instruct', 'Qwen/Qwen3-VL-4B-Instruct'))

GEMMA3 = Family(
    name='gemma3', title='Gemma 3', model_types=('gemma3',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template=('<bos><start_of_turn>user\n<start_of_image>{question}<end_of_turn>\n'
                     '<start_of_turn>model\n'),
    operations=GENERATIVE_OPS, bidirectional_image=True, position_ids=True,
    examples=('google/gemma-3-4b-it', 'google/gemma-3-12b-it'))

# The transformers format of FastVLM (apple/FastVLM-* ship ml-fastvlm's remote code).
FAST_VLM = Family(
    name='fast_vlm', title='FastVLM', model_types=('fast_vlm',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template=('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                     '<|im_start|>user\n<image>\n{question}<|im_end|>\n<|im_start|>assistant\n'),
    operations=GENERATIVE_OPS, shared_prefix=True, position_ids=True,
    examples=('KamilaMila/FastVLM-7B',))

# LFM2's gated short convolutions read the two tokens before each one whatever the mask,
# so its questions are not packed: one prefill, then the tails right after its cache.
# Its image processor exists only as a torchvision backend in transformers.
LFM2_VL = Family(
    name='lfm2_vl', title='LFM2-VL', model_types=('lfm2_vl',),
    model_class='AutoModelForImageTextToText', processor_class='AutoProcessor',
    prompt_template=('<|startoftext|><|im_start|>user\n<image>{question}<|im_end|>\n'
                     '<|im_start|>assistant\n'),
    operations=GENERATIVE_OPS, unmaskable_layers=True, position_ids=True,
    image_budget='image_tokens', examples=('LiquidAI/LFM2-VL-450M', 'LiquidAI/LFM2-VL-1.6B'))

# Positions may be multimodal (e.g. Qwen2-VL's M-RoPE), so every question runs in full.
GENERIC = Family(
    name='generic', title='any AutoModelForImageTextToText (Qwen2-VL, PaliGemma, ...)',
    model_types=('*',), model_class='AutoModelForImageTextToText',
    processor_class='AutoProcessor', prompt_template='USER: <image>\n{question} ASSISTANT:',
    operations=GENERATIVE_OPS, examples=('Qwen/Qwen2-VL-2B-Instruct',))

# Most specific first: family_for returns the first family that matches.
FAMILIES = (LLAVA_PHI3, BAKLLAVA, LLAVA, BLIP2_ITM, BLIP2, INSTRUCTBLIP, CLIP, IDEFICS3,
            SMOLVLM, QWEN2_5_VL, QWEN3_VL, GEMMA3, FAST_VLM, LFM2_VL, GENERIC)
BY_NAME: Dict[str, Family] = {f.name: f for f in FAMILIES}


class UnsupportedModel(ValueError):
    """The config belongs to no family in the registry."""


def image_text_to_text_types() -> FrozenSet[str]:
    """config.model_type values transformers can load as image-text-to-text models."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    return frozenset(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES)


def is_image_text_to_text(config: Any) -> bool:
    return getattr(config, 'model_type', None) in image_text_to_text_types()


def family_for(config: Any) -> Family:
    """Return the first family in FAMILIES whose description the config matches."""
    for family in FAMILIES:
        if family.matches(config):
            return family
    archs = ', '.join(getattr(config, 'architectures', None) or []) or 'unknown'
    raise UnsupportedModel(
        f"a '{getattr(config, 'model_type', None)}' model ({archs}), not an image-text-to-text "
        '(vision-language) model nor one of the registered families '
        f"({', '.join(f.name for f in FAMILIES[:-1])})")


def model_class(config: Any):
    """Return the transformers class that loads this config."""
    import transformers
    return getattr(transformers, family_for(config).model_class)


def torch_dtype(name: str):
    import torch
    if name not in DTYPES:
        raise ValueError(f"unknown dtype '{name}'; use one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def _element_size(dtype: str) -> int:
    import torch
    return torch.empty((), dtype=torch_dtype(dtype)).element_size()


def _meta_model(config: Any):
    import torch
    # The meta device allocates nothing, so this is cheap even for multi-billion models.
    cls = model_class(config)
    with torch.device('meta'):
        # Auto classes build through from_config, concrete ones through _from_config.
        build = getattr(cls, '_from_config', None) or cls.from_config
        return build(config)


def parameter_count(config: Any) -> int:
    """Parameters of the model a config describes (tied weights counted once)."""
    return int(sum(p.numel() for p in _meta_model(config).parameters()))


def estimate_memory_bytes(config: Any, dtype: str) -> int:
    """Bytes the weights and floating buffers take in ``dtype`` (no activations, no KV cache)."""
    element = _element_size(dtype)
    model = _meta_model(config)
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for b in model.buffers() if b.is_floating_point())
    return int(n) * element


def _text_config(config: Any) -> Optional[Any]:
    if getattr(config, 'model_type', None) in BY_NAME['clip'].model_types:
        return None     # CLIP's text tower encodes, it keeps no cache
    if BLIP2_ITM.matches(config):
        return None
    return getattr(config, 'text_config', None) or config


def image_tokens(config: Any) -> int:
    """Language-model positions one image takes, from the config (0 where unknown)."""
    for name in ('image_seq_length', 'num_query_tokens', 'image_seq_len', 'mm_tokens_per_image'):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    vision = getattr(config, 'vision_config', None)
    size, patch = getattr(vision, 'image_size', None), getattr(vision, 'patch_size', None)
    if isinstance(size, int) and isinstance(patch, int) and patch > 0:
        scale = getattr(config, 'scale_factor', 1) or 1
        return (size // patch) ** 2 // int(scale) ** 2
    return 0


def kv_cache_bytes_per_token(config: Any, dtype: str) -> int:
    """Key + value bytes the language model caches per token (0 for encoders)."""
    text = _text_config(config)
    if text is None:
        return 0
    if getattr(text, 'is_encoder_decoder', False):
        layers = getattr(text, 'num_decoder_layers', None) or text.num_layers
        heads, head_dim = text.num_heads, text.d_kv
    else:
        layers = text.num_hidden_layers
        heads = getattr(text, 'num_key_value_heads', None) or text.num_attention_heads
        head_dim = (getattr(text, 'head_dim', None)
                    or text.hidden_size // text.num_attention_heads)
    return 2 * int(layers) * int(heads) * int(head_dim) * _element_size(dtype)


@dataclass(frozen=True)
class MemoryEstimate:
    dtype: str
    parameters: int
    weights_bytes: int
    context_tokens: int     # one image + TEXT_TOKENS
    kv_cache_bytes: int     # for context_tokens, batch 1

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_cache_bytes


def memory_by_dtype(config: Any) -> Dict[str, MemoryEstimate]:
    """Weights + KV cache of one request, per precision, all computed from the config."""
    model = _meta_model(config)
    params = int(sum(p.numel() for p in model.parameters()))
    floats = params + int(sum(b.numel() for b in model.buffers() if b.is_floating_point()))
    kv_config = _text_config(config)
    context = (image_tokens(config) + TEXT_TOKENS) if kv_config is not None else 0
    out = {}
    for dtype in DTYPES:
        out[dtype] = MemoryEstimate(
            dtype=dtype, parameters=params, weights_bytes=floats * _element_size(dtype),
            context_tokens=context,
            kv_cache_bytes=context * kv_cache_bytes_per_token(config, dtype))
    import torch
    # Linear and Embedding weights in 8 bits (see hf_backend.quantize_linear_int8).
    eight_bit = int(sum(m.weight.numel() for m in model.modules()
                        if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))))
    out['int8'] = MemoryEstimate(
        dtype='int8', parameters=params, weights_bytes=eight_bit + (floats - eight_bit) * 4,
        context_tokens=context, kv_cache_bytes=out['float32'].kv_cache_bytes)
    return out


def markdown_table() -> str:
    """Write the README's table of supported families from FAMILIES."""
    def code(text: str) -> str:
        # A '|' even inside backticks would end a table cell.
        return '`' + text.replace('\n', '\\n').replace('|', '\\|') + '`'

    rows = ['| family | config | classes | prompt | operations | e.g. |',
            '|---|---|---|---|---|---|']
    for f in FAMILIES:
        match = 'any image-text-to-text' if f.model_types == ('*',) else ', '.join(
            code(t) for t in f.model_types)
        if f.text_model_types:
            match += ' + text ' + ', '.join(code(t) for t in f.text_model_types)
        if f.architectures:
            match += ' + ' + ', '.join(code(a) for a in f.architectures)
        if f.choice_template:
            prompt = code(f.choice_template) + ' per choice'
        elif f.model_types == ('*',):
            prompt = "the processor's chat template"
        else:
            prompt = code(f.prompt_template)
        rows.append(f'| {f.title} | {match} | {code(f.model_class)}, {code(f.processor_class)} '
                    f"| {prompt} | {', '.join(sorted(f.operations))} "
                    f"| {', '.join(code(e) for e in f.examples)} |")
    return '\n'.join(rows) + '\n'
