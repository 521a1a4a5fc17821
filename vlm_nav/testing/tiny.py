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
Small random-weight models of real transformers classes, for tests and benchmarks.

Each builder writes a folder with ``save_pretrained`` (config, safetensors weights,
tokenizer, processor with a chat template, generation config), so the folder loads
through exactly the same ``from_pretrained`` path as a Hugging Face hub model.
Nothing is downloaded: the tokenizer is trained here with ``tokenizers``.
"""

from pathlib import Path
from typing import Iterator, Optional, Union

from vlm_nav.models.embedded import set_generation_defaults
from vlm_nav.models.prompting import chat_template_for
from vlm_nav.models.registry import BAKLLAVA, LLAVA_PHI3
from vlm_nav.perception.vocabulary import (BEARINGS, DESCRIBE_PROMPT, DISTANCES, PATH_QUESTION,
                                           YES_NO)

PathLike = Union[str, Path]

IMAGE_TOKEN = '<image>'
SPECIAL_TOKENS = ['<pad>', '<s>', '</s>', IMAGE_TOKEN]

# LLaVA-1.5 conversation format, the same text as prompting.LLAVA_FALLBACK; the
# assistant turn ends with EOS so training targets can stop.
LLAVA_CHAT_TEMPLATE = (
    '{% for message in messages %}'
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    '{% endfor %} '
    '{% else %}ASSISTANT: '
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    '{% endfor %}</s>'
    '{% endif %}{% endfor %}'
    '{% if add_generation_prompt %}ASSISTANT:{% endif %}'
)

# SmolVLM / Idefics3 style: 'User:<image>text<end_of_utterance>\nAssistant:'.
IDEFICS3_CHAT_TEMPLATE = (
    '<|im_start|>{% for message in messages %}'
    "{{ message['role'] | capitalize }}:"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
    '{% endfor %}<end_of_utterance>\n{% endfor %}'
    '{% if add_generation_prompt %}Assistant:{% endif %}'
)

_OBJECTS = ['red ball', 'blue box', 'green cone', 'yellow chair', 'door', 'table', 'robot']


def _corpus() -> Iterator[str]:
    """Sentences for the BPE merges: every answer word must become one token."""
    answers = list(YES_NO) + list(BEARINGS) + list(DISTANCES)
    for obj in _OBJECTS:
        for question in (f'Is there a {obj}?', f'Where is the {obj}?',
                         f'Is the {obj} near or far?', PATH_QUESTION, DESCRIBE_PROMPT):
            for answer in answers:
                yield f'USER: {question} ASSISTANT: {answer}'
                yield f'Assistant: {answer}. {obj} {answer}'


def build_tokenizer(extra_special: tuple = (), vocab_size: int = 400,
                    add_bos_eos: bool = False, specials: tuple = tuple(SPECIAL_TOKENS),
                    image_token_attribute: bool = True, named: Optional[dict] = None,
                    bos: str = '<s>', eos: str = '</s>'):
    """
    Build a byte-level BPE fast tokenizer (no <unk>: any typed target can be spelled).

    :param add_bos_eos: wrap every sequence in <s> ... </s> (text encoders such as CLIP's
        pool at the end token).
    :param specials: the first special tokens, in id order.
    :param image_token_attribute: expose ``tokenizer.image_token`` (LLaVA-style processors
        read it); BLIP processors add their own when the tokenizer has none, as with the
        hub's BLIP-2 tokenizers.
    :param named: other named special tokens (``tokenizer.boi_token`` and the like), which
        are added to the vocabulary; ``named['image_token']`` replaces '<image>'.
    :param bos: the begin and end of text tokens (among ``specials``).
    """
    from tokenizers import decoders, models, pre_tokenizers, processors, Tokenizer, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = list(specials) + list(extra_special)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    if add_bos_eos:
        bos_id, eos_id = tok.token_to_id(bos), tok.token_to_id(eos)
        tok.post_processor = processors.TemplateProcessing(
            single=f'{bos} $A {eos}', pair=f'{bos} $A {eos} $B {eos}',
            special_tokens=[(bos, bos_id), (eos, eos_id)])
    extra = {'image_token': IMAGE_TOKEN} if image_token_attribute else {}
    extra.update(named or {})
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token='<pad>',
        **({'extra_special_tokens': extra} if extra else {}))


def build_tiny_llava(save_dir: PathLike, seed: int = 0, image_size: int = 96,
                     patch_size: int = 12) -> str:
    """Save a ~2 M parameter LlavaForConditionalGeneration (CLIP + Llama) to save_dir."""
    import torch
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig,
                              LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor)

    save_dir = Path(save_dir)
    tokenizer = build_tokenizer()
    vision = CLIPVisionConfig(
        image_size=image_size, patch_size=patch_size, hidden_size=128, intermediate_size=256,
        num_hidden_layers=3, num_attention_heads=4, projection_dim=128)
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=192, intermediate_size=384,
        num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        # Larger than the 0.02 default so a random model gives non-flat answers.
        initializer_range=0.2)
    n_patches = (image_size // patch_size) ** 2
    config = LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=n_patches, vision_feature_select_strategy='default',
        vision_feature_layer=-2, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    set_generation_defaults(model, tokenizer)

    image_processor = CLIPImageProcessorPil(
        size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size},
        do_center_crop=True)
    # CLIP has a CLS token that the 'default' strategy drops: one extra token per image,
    # else the processor expands one <image> too few.
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy='default', chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1)
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return str(save_dir)


def build_tiny_generic(save_dir: PathLike, seed: int = 0, image_size: int = 64,
                       patch_size: int = 8) -> str:
    """
    Save a small Idefics3ForConditionalGeneration (SmolVLM's shape) to save_dir.

    model_type 'idefics3' is not 'llava', so it loads through AutoModelForImageTextToText;
    its processor works without torchvision (Idefics3ImageProcessorPil).
    """
    import torch
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration,
                              Idefics3ImageProcessorPil, Idefics3Processor,
                              Idefics3VisionConfig, LlamaConfig)

    save_dir = Path(save_dir)
    tokenizer = build_tokenizer(
        extra_special=('<fake_token_around_image>', '<global-img>', '<end_of_utterance>',
                       '<|im_start|>'))
    scale_factor = 2
    vision = Idefics3VisionConfig(
        image_size=image_size, patch_size=patch_size, hidden_size=96, intermediate_size=192,
        num_hidden_layers=2, num_attention_heads=4)
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False, initializer_range=0.2)
    config = Idefics3Config(
        vision_config=vision, text_config=text, scale_factor=scale_factor,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    set_generation_defaults(model, tokenizer)

    # One global image, no tiling: the image is already small.
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={'longest_edge': image_size},
        max_image_size={'longest_edge': image_size})
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor ** 2
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=image_seq_len,
        chat_template=IDEFICS3_CHAT_TEMPLATE)
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return str(save_dir)


# ---- one small model per registry family ----------------------------------------------------

def _text_kwargs(tokenizer, hidden: int = 128, layers: int = 2) -> dict:
    """Return the decoder LM sizes shared by the small families (Llama, Mistral, Phi-3)."""
    return {'vocab_size': len(tokenizer), 'hidden_size': hidden,
            'intermediate_size': 2 * hidden, 'num_hidden_layers': layers,
            'num_attention_heads': 4, 'num_key_value_heads': 2, 'max_position_embeddings': 512,
            'pad_token_id': tokenizer.pad_token_id, 'bos_token_id': tokenizer.bos_token_id,
            'eos_token_id': tokenizer.eos_token_id, 'tie_word_embeddings': False,
            'initializer_range': 0.2}


def _save(save_dir: PathLike, model, processor, tokenizer) -> str:
    set_generation_defaults(model, tokenizer)
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return str(save_dir)


def _build_llava_variant(save_dir: PathLike, family, text_config_class: str,
                         extra_special: tuple, seed: int, image_size: int = 48,
                         patch_size: int = 12) -> str:
    """Build a LLaVA whose language model is ``text_config_class``, prompted as ``family`` is."""
    import torch
    import transformers
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tokenizer = build_tokenizer(extra_special=extra_special)
    vision = CLIPVisionConfig(
        image_size=image_size, patch_size=patch_size, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, projection_dim=64)
    text = getattr(transformers, text_config_class)(**_text_kwargs(tokenizer))
    config = LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy='default', vision_feature_layer=-2,
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size},
        do_center_crop=True)
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy='default',
        chat_template=chat_template_for(family.prompt_template), num_additional_image_tokens=1)
    return _save(save_dir, model, processor, tokenizer)


def build_tiny_llava_phi3(save_dir: PathLike, seed: int = 0) -> str:
    """Save a model of LLaVA-Phi-3-mini's shape: CLIP + Phi-3 language model, Phi-3 turns."""
    return _build_llava_variant(save_dir, LLAVA_PHI3, 'Phi3Config',
                                ('<|user|>', '<|end|>', '<|assistant|>'), seed)


def build_tiny_bakllava(save_dir: PathLike, seed: int = 0) -> str:
    """Save a model of BakLLaVA's shape: CLIP tower + Mistral language model."""
    return _build_llava_variant(save_dir, BAKLLAVA, 'MistralConfig', (), seed)


def _blip_image_processor(image_size: int):
    from transformers import BlipImageProcessorPil
    return BlipImageProcessorPil(size={'height': image_size, 'width': image_size})


def _blip2_config(tokenizer, qformer_vocab: int, image_size: int, query_tokens: int,
                  image_token_index, text_input: bool = False):
    from transformers import Blip2Config, Blip2QFormerConfig, Blip2VisionConfig, OPTConfig
    vision = Blip2VisionConfig(
        image_size=image_size, patch_size=8, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4)
    qformer = Blip2QFormerConfig(
        vocab_size=qformer_vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=128, pad_token_id=0,
        cross_attention_frequency=1, use_qformer_text_input=text_input,
        # Larger than the 0.02 default so random text embeddings differ visibly.
        initializer_range=0.2)
    # blip2-opt-*: an OPT decoder as the language model.
    text = OPTConfig(
        vocab_size=len(tokenizer), hidden_size=128, ffn_dim=256, num_hidden_layers=2,
        num_attention_heads=4, word_embed_proj_dim=128, max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, init_std=0.2)
    return Blip2Config(vision_config=vision, qformer_config=qformer, text_config=text,
                       num_query_tokens=query_tokens, image_text_hidden_size=64,
                       image_token_index=image_token_index, initializer_range=0.2)


def build_tiny_blip2(save_dir: PathLike, seed: int = 0, image_size: int = 32,
                     query_tokens: int = 8) -> str:
    """Save a model of BLIP-2's generative shape (blip2-opt): ViT + Q-Former + OPT, no template."""
    import torch
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    tokenizer = build_tokenizer(image_token_attribute=False)
    config = _blip2_config(tokenizer, len(tokenizer), image_size, query_tokens,
                           tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
    torch.manual_seed(seed)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(image_processor=_blip_image_processor(image_size),
                               tokenizer=tokenizer, num_query_tokens=query_tokens)
    return _save(save_dir, model, processor, tokenizer)


def build_tiny_blip2_itm(save_dir: PathLike, seed: int = 0, image_size: int = 32,
                         query_tokens: int = 8) -> str:
    """Save a model of BLIP-2's retrieval shape (blip2-itm-vit-g): Q-Former + ITM head, no LM."""
    import torch
    from transformers import Blip2ForImageTextRetrieval, Blip2Processor

    # The Q-Former reads the text; like BERT it wants [CLS] ... [SEP] around it.
    tokenizer = build_tokenizer(add_bos_eos=True, image_token_attribute=False)
    config = _blip2_config(tokenizer, len(tokenizer), image_size, query_tokens, None,
                           text_input=True)
    torch.manual_seed(seed)
    model = Blip2ForImageTextRetrieval(config).eval()
    # No query tokens in the text: the ITM head puts the queries in front itself.
    processor = Blip2Processor(image_processor=_blip_image_processor(image_size),
                               tokenizer=tokenizer, num_query_tokens=None)
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return str(save_dir)


def build_tiny_instructblip(save_dir: PathLike, seed: int = 0, image_size: int = 32,
                            query_tokens: int = 8) -> str:
    """Save an InstructBLIP-shaped model (instructblip-vicuna): the Q-Former reads the prompt."""
    import torch
    from transformers import (InstructBlipConfig, InstructBlipForConditionalGeneration,
                              InstructBlipProcessor, InstructBlipQFormerConfig,
                              InstructBlipVisionConfig, LlamaConfig)

    tokenizer = build_tokenizer(image_token_attribute=False)
    qformer_tokenizer = build_tokenizer(add_bos_eos=True, image_token_attribute=False)
    vision = InstructBlipVisionConfig(
        image_size=image_size, patch_size=8, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4)
    qformer = InstructBlipQFormerConfig(
        vocab_size=len(qformer_tokenizer), hidden_size=64, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=128, max_position_embeddings=128,
        pad_token_id=0, cross_attention_frequency=1)
    text = LlamaConfig(**_text_kwargs(tokenizer))
    config = InstructBlipConfig(
        vision_config=vision, qformer_config=qformer, text_config=text,
        num_query_tokens=query_tokens,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), initializer_range=0.2)
    torch.manual_seed(seed)
    model = InstructBlipForConditionalGeneration(config).eval()
    processor = InstructBlipProcessor(
        image_processor=_blip_image_processor(image_size), tokenizer=tokenizer,
        qformer_tokenizer=qformer_tokenizer, num_query_tokens=query_tokens)
    return _save(save_dir, model, processor, tokenizer)


def build_tiny_clip(save_dir: PathLike, seed: int = 0, image_size: int = 32) -> str:
    """Save a small contrastive CLIPModel (ViT + text transformer): the zero-shot scorer."""
    import torch
    from transformers import (CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor,
                              CLIPTextConfig, CLIPVisionConfig)

    # The text tower pools at the end token; keep its id off 2 (CLIP's legacy argmax rule).
    tokenizer = build_tokenizer(add_bos_eos=True,
                                specials=('<pad>', IMAGE_TOKEN, '<s>', '</s>'))
    text = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    vision = CLIPVisionConfig(
        image_size=image_size, patch_size=8, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4)
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=32,
                        initializer_factor=1.0)
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size},
        do_center_crop=True)
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return str(save_dir)


def _build_llava(save_dir: PathLike, seed: int = 0) -> str:
    return build_tiny_llava(save_dir, seed=seed, image_size=48, patch_size=12)


# ---- the families robots run: Qwen2.5-VL / Qwen3-VL, SmolVLM2, Gemma 3, FastVLM, LFM2-VL ----

QWEN_SPECIALS = ('<|im_start|>', '<|im_end|>', '<|vision_start|>', '<|vision_end|>',
                 '<|image_pad|>', '<|video_pad|>')


def _qwen_chat_template(system: str) -> str:
    """Qwen2-VL's chat template, the image and text parts (system turn first if given)."""
    head = ("{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
            + system + '<|im_end|>\n{% endif %}') if system else ''
    return ('{% for message in messages %}' + head
            + "<|im_start|>{{ message['role'] }}\n"
            + "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
            + "{% for c in message['content'] %}{% if c['type'] == 'image' %}"
            + '<|vision_start|><|image_pad|><|vision_end|>'
            + "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
            + '<|im_end|>\n{% endfor %}'
            + '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}')


def _qwen_tokens(tokenizer) -> dict:
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ('vision_start_token_id', '<|vision_start|>'), ('vision_end_token_id', '<|vision_end|>'),
        ('image_token_id', '<|image_pad|>'), ('video_token_id', '<|video_pad|>'))}
    return ids


def _qwen_processor(cls_name: str, tokenizer, patch_size: int, system: str, max_pixels: int):
    import transformers
    from transformers import Qwen2VLImageProcessorPil

    from vlm_nav.models.hf_backend import images_only_processor
    # min_pixels: one merged 2x2 patch; max_pixels: a 64x48 camera frame as it is.
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=patch_size, temporal_patch_size=2, merge_size=2,
        min_pixels=(2 * patch_size) ** 2, max_pixels=max_pixels)
    cls = images_only_processor(getattr(transformers, cls_name))
    return cls(image_processor=image_processor, tokenizer=tokenizer,
               chat_template=_qwen_chat_template(system))


def build_tiny_qwen2_5_vl(save_dir: PathLike, seed: int = 0, patch_size: int = 4,
                          max_pixels: int = 64 * 48) -> str:
    """
    Save a small Qwen2_5_VLForConditionalGeneration: windowed ViT with 2-D RoPE + M-RoPE LM.

    A 64x48 frame is 16x12 patches of 4 pixels, merged 2x2 into 48 image tokens.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer(extra_special=QWEN_SPECIALS, image_token_attribute=False)
    vision = {'depth': 2, 'hidden_size': 32, 'intermediate_size': 64, 'num_heads': 2,
              'patch_size': patch_size, 'spatial_merge_size': 2, 'temporal_patch_size': 2,
              # Windows of 2x2 merged patches, the second block attends in full.
              'window_size': 4 * patch_size, 'fullatt_block_indexes': [1],
              'out_hidden_size': 64, 'initializer_range': 0.2}
    text = {**_text_kwargs(tokenizer, hidden=64),
            # head_dim 16: 8 rotary pairs split over (temporal, height, width).
            'rope_parameters': {'rope_type': 'default', 'rope_theta': 10000.0,
                                'mrope_section': [2, 3, 3]}}
    config = Qwen2_5_VLConfig(vision_config=vision, text_config=text, **_qwen_tokens(tokenizer))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    processor = _qwen_processor('Qwen2_5_VLProcessor', tokenizer, patch_size,
                                'You are a helpful assistant.', max_pixels)
    return _save(save_dir, model, processor, tokenizer)


def build_tiny_qwen3_vl(save_dir: PathLike, seed: int = 0, patch_size: int = 4,
                        max_pixels: int = 64 * 48) -> str:
    """
    Save a small Qwen3VLForConditionalGeneration: ViT with DeepStack features + M-RoPE LM.

    The vision tower's features after block 0 are added to the LM's first layer's image
    positions (DeepStack), its last ones become the image tokens; interleaved M-RoPE.
    """
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    tokenizer = build_tokenizer(extra_special=QWEN_SPECIALS, image_token_attribute=False)
    vision = {'depth': 2, 'hidden_size': 32, 'intermediate_size': 64, 'num_heads': 2,
              'patch_size': patch_size, 'spatial_merge_size': 2, 'temporal_patch_size': 2,
              'out_hidden_size': 64, 'num_position_embeddings': 64,
              'deepstack_visual_indexes': [0], 'initializer_range': 0.2}
    text = {**_text_kwargs(tokenizer, hidden=64), 'head_dim': 16,
            'rope_parameters': {'rope_type': 'default', 'rope_theta': 10000.0,
                                'mrope_section': [2, 3, 3], 'mrope_interleaved': True}}
    text.pop('tie_word_embeddings')
    config = Qwen3VLConfig(vision_config=vision, text_config=text, tie_word_embeddings=False,
                           **_qwen_tokens(tokenizer))
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config).eval()
    processor = _qwen_processor('Qwen3VLProcessor', tokenizer, patch_size, '', max_pixels)
    return _save(save_dir, model, processor, tokenizer)


# SmolVLM2's chat template: 'User:' then the image and the text, 'Assistant:' to answer.
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tiny_smolvlm(save_dir: PathLike, seed: int = 0, tile: int = 32, patch_size: int = 8,
                       longest_edge: int = 64) -> str:
    """
    Save a small SmolVLMForConditionalGeneration (SmolVLM2): SigLIP tiles + pixel shuffle + LM.

    As the real processor does, a frame is resized to ``longest_edge`` (a multiple of the
    ``tile``), cut into tiles and given a global view too, each tile 4 image tokens here: a
    64x48 frame is 2x2 tiles + the global one (max_image_pixels sets the longest edge).
    """
    import torch
    from transformers import (LlamaConfig, SmolVLMConfig, SmolVLMForConditionalGeneration,
                              SmolVLMImageProcessorPil, SmolVLMProcessor, SmolVLMVisionConfig)

    from vlm_nav.models.hf_backend import images_only_processor
    tokenizer = build_tokenizer(
        extra_special=('<fake_token_around_image>', '<global-img>', '<end_of_utterance>',
                       '<|im_start|>', '<row_1_col_1>', '<row_1_col_2>', '<row_2_col_1>',
                       '<row_2_col_2>'))
    scale_factor = 2
    vision = SmolVLMVisionConfig(
        image_size=tile, patch_size=patch_size, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4, initializer_range=0.2)
    text = LlamaConfig(**_text_kwargs(tokenizer))
    config = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=scale_factor,
                           image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                           pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(config).eval()
    image_processor = SmolVLMImageProcessorPil(
        do_image_splitting=True, size={'longest_edge': longest_edge},
        max_image_size={'longest_edge': tile})
    processor = images_only_processor(SmolVLMProcessor)(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
        image_seq_len=(tile // patch_size) ** 2 // scale_factor ** 2,
        chat_template=SMOLVLM_CHAT_TEMPLATE)
    return _save(save_dir, model, processor, tokenizer)


# Gemma 3's chat template: turns of 'user' and 'model', the image as <start_of_image>.
GEMMA3_CHAT_TEMPLATE = (
    '{{ bos_token }}{% for message in messages %}'
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}"
    "{{ '<start_of_image>' }}{% elif item['type'] == 'text' %}{{ item['text'] | trim }}"
    "{% endif %}{% endfor %}{{ '<end_of_turn>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def build_tiny_gemma3(save_dir: PathLike, seed: int = 0, image_size: int = 64,
                      patch_size: int = 8, sliding_window: int = 24) -> str:
    """
    Save a small Gemma3ForConditionalGeneration: SigLIP + 4x4 pooled image tokens + Gemma 3.

    The language model alternates a sliding-window layer (a window shorter than the prompt,
    so the packed mask's window is exercised) and a global one; the 16 image tokens attend
    to each other both ways, as Gemma 3's do.
    """
    import torch
    from transformers import (Gemma3Config, Gemma3ForConditionalGeneration,
                              Gemma3ImageProcessorPil, Gemma3Processor, Gemma3TextConfig,
                              SiglipVisionConfig)

    named = {'image_token': '<image_soft_token>', 'boi_token': '<start_of_image>',
             'eoi_token': '<end_of_image>'}
    tokenizer = build_tokenizer(
        specials=('<pad>', '<bos>', '<eos>', '<start_of_turn>', '<end_of_turn>'),
        extra_special=tuple(named.values()), image_token_attribute=False, named=named,
        bos='<bos>', eos='<eos>')
    ids = {key: tokenizer.convert_tokens_to_ids(tok) for key, tok in named.items()}
    text = Gemma3TextConfig(
        **{**_text_kwargs(tokenizer, hidden=64), 'head_dim': 16, 'query_pre_attn_scalar': 16,
           'sliding_window': sliding_window,
           'layer_types': ['sliding_attention', 'full_attention']})
    vision = SiglipVisionConfig(
        image_size=image_size, patch_size=patch_size, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4)
    tokens = 16
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=tokens,
        boi_token_index=ids['boi_token'], eoi_token_index=ids['eoi_token'],
        image_token_index=ids['image_token'], initializer_range=0.2)
    torch.manual_seed(seed)
    model = Gemma3ForConditionalGeneration(config).eval()
    # Gemma 3 initializes its image projection to zeros (images would carry nothing):
    # random weights of the text embeddings' scale instead.
    with torch.no_grad():
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(std=0.2)
    image_processor = Gemma3ImageProcessorPil(
        size={'height': image_size, 'width': image_size}, do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                image_seq_length=tokens, chat_template=GEMMA3_CHAT_TEMPLATE)
    return _save(save_dir, model, processor, tokenizer)


def build_tiny_fast_vlm(save_dir: PathLike, seed: int = 0, image_size: int = 32) -> str:
    """
    Save a small FastVlmForConditionalGeneration: a convolutional tower's feature map + Qwen2.

    FastVLM's own tower is timm's FastViTHD (fastvit_mci3), and timm needs torchvision,
    which does not install beside the CPU torch here; the tower here is a transformers
    ConvNeXt, whose last feature map FastVLM's code flattens into image tokens as it does
    FastViTHD's (a 32x32 frame, stride 8: 16 tokens). The projector, the language model
    (Qwen2), the prompt and LlavaProcessor are FastVLM's.
    """
    import torch
    from transformers import (CLIPImageProcessorPil, ConvNextConfig, FastVlmConfig,
                              FastVlmForConditionalGeneration, LlavaProcessor, Qwen2Config)

    tokenizer = build_tokenizer(extra_special=('<|im_start|>', '<|im_end|>'))
    stride = 8
    # FastVLM's projector reads the tower's width as vision_config.hidden_size.
    vision = ConvNextConfig(num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[32, 64],
                            depths=[1, 1], image_size=image_size, hidden_size=64)
    text = Qwen2Config(**_text_kwargs(tokenizer))
    config = FastVlmConfig(
        vision_config=vision, text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(image_size // stride) ** 2)
    torch.manual_seed(seed)
    model = FastVlmForConditionalGeneration(config).eval()
    image_processor = CLIPImageProcessorPil(
        size={'shortest_edge': image_size}, crop_size={'height': image_size, 'width': image_size},
        do_center_crop=True)
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=stride,
        vision_feature_select_strategy='full', num_additional_image_tokens=0,
        chat_template=_qwen_chat_template('You are a helpful assistant.').replace(
            '<|vision_start|><|image_pad|><|vision_end|>', '<image>\n'))
    return _save(save_dir, model, processor, tokenizer)


def tiny_lfm2_vl_model(tokenizer, seed: int = 0):
    """
    Return a small Lfm2VlForConditionalGeneration (SigLIP2 NaFlex + LFM2: conv, attention, conv).

    Model only: LFM2-VL's image processor exists only as a torchvision backend in
    transformers, and torchvision does not install beside the CPU torch here, so no
    processor (and no BUILDERS entry, see UNBUILT); tests feed NaFlex patches of 4 pixels.
    """
    import torch
    from transformers import Lfm2Config, Lfm2VlConfig, Lfm2VlForConditionalGeneration
    from transformers import Siglip2VisionConfig

    text = _text_kwargs(tokenizer, hidden=64)
    text.pop('tie_word_embeddings')
    text = Lfm2Config(**{**text, 'num_hidden_layers': 3},
                      layer_types=['conv', 'full_attention', 'conv'])
    vision = Siglip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, patch_size=4, num_patches=64)
    config = Lfm2VlConfig(vision_config=vision, text_config=text, projector_hidden_size=64,
                          image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                          downsample_factor=2, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return Lfm2VlForConditionalGeneration(config).eval()


# Registry families with no small model here, and why.
UNBUILT = {'lfm2_vl': 'its image processor (Lfm2VlImageProcessor) exists only as a torchvision '
                      'backend in transformers 5.24; torchvision does not install beside the '
                      'CPU torch here (tiny_lfm2_vl_model builds the model alone)'}

# Registry family name -> builder of a small model of that family.
BUILDERS = {
    'llava': _build_llava,
    'llava-phi3': build_tiny_llava_phi3,
    'bakllava': build_tiny_bakllava,
    'blip-2': build_tiny_blip2,
    'blip-2-itm': build_tiny_blip2_itm,
    'instructblip': build_tiny_instructblip,
    'clip': build_tiny_clip,
    'idefics3': build_tiny_generic,
    'smolvlm': build_tiny_smolvlm,
    'qwen2_5_vl': build_tiny_qwen2_5_vl,
    'qwen3_vl': build_tiny_qwen3_vl,
    'gemma3': build_tiny_gemma3,
    'fast_vlm': build_tiny_fast_vlm,
}
