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
The embedded model: a tiny LLaVA (CLIP tower + MLP projector + Llama LM) built from a config.

Everything here builds real transformers objects (`LlavaForConditionalGeneration`,
`PreTrainedTokenizerFast`, `LlavaProcessor`) so the shipped folder loads with plain
`from_pretrained` like any hub model. No ROS imports.
"""

import os
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from vlm_nav.perception import vocabulary

# Folder of the shipped save_pretrained files (model, tokenizer, processor).
EMBEDDED_MODEL_DIR = Path(__file__).resolve().parent.parent / 'embedded_model'

# Image and vision tower. 96 px with 8 px patches: 12x12 patches, each bearing third
# (32 px) is exactly 4 patch columns, and a far object still covers a few patches.
IMAGE_SIZE = 96
PATCH_SIZE = 8
VISION_HIDDEN = 128
VISION_LAYERS = 4
VISION_HEADS = 4
VISION_INTERMEDIATE = 512

# Language model.
TEXT_HIDDEN = 192
TEXT_LAYERS = 4
TEXT_HEADS = 6
TEXT_INTERMEDIATE = 512
MAX_POSITIONS = 512
VOCAB_SIZE = 640            # upper bound; the BPE trainer stops when the corpus has no more pairs

# Special tokens. The answer starts right after ASSISTANT_TOKEN, so 'yes' (no leading
# space) is the token a closed-set scorer or pipeline('decision') reads.
PAD_TOKEN = '<pad>'
BOS_TOKEN = '<s>'
EOS_TOKEN = '</s>'
IMAGE_TOKEN = '<image>'
USER_TOKEN = '<|user|>'
ASSISTANT_TOKEN = '<|assistant|>'
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, IMAGE_TOKEN, USER_TOKEN, ASSISTANT_TOKEN]

# Words that must each be one token (with and without a leading space).
ANSWER_WORDS = tuple(vocabulary.YES_NO + vocabulary.BEARINGS + vocabulary.DISTANCES
                     + (vocabulary.NOTHING,))

# One user turn: '<|user|><image>...\n{question}<|assistant|>'; assistant turns end in EOS.
CHAT_TEMPLATE = (
    '{%- for message in messages -%}'
    '{%- if message.role == "assistant" -%}' + ASSISTANT_TOKEN
    + '{%- else -%}' + USER_TOKEN + '{%- endif -%}'
    '{%- if message.content is string -%}{{ message.content }}'
    '{%- else -%}{%- for item in message.content -%}'
    '{%- if item.type == "image" -%}{{ "' + IMAGE_TOKEN + '\\n" }}'
    '{%- elif item.type == "text" -%}{{ item.text }}{%- endif -%}'
    '{%- endfor -%}{%- endif -%}'
    '{%- if message.role == "assistant" -%}' + EOS_TOKEN + '{%- endif -%}'
    '{%- endfor -%}'
    '{%- if add_generation_prompt -%}' + ASSISTANT_TOKEN + '{%- endif -%}'
)

# Words beyond the simulator's labels so typed free targets get compact tokens; the
# byte-level fallback still spells anything else.
EXTRA_WORDS = (
    'red green blue yellow orange purple pink white black gray grey brown cyan magenta '
    'ball box cube cylinder cone sphere chair table door person robot cup bottle plant '
    'sofa bed lamp shelf cabinet wall floor window car dog cat bag backpack trash can '
    'the a an is there where what near far left right center clear path ahead scene '
    'describe of in on to and or it this that object thing small big large tall'
).split()


def num_image_tokens(image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE) -> int:
    """Count the image tokens in the prompt: one per patch (the CLS token dropped, 'default')."""
    return (image_size // patch_size) ** 2


def tokenizer_corpus(labels: Iterable[str]) -> List[str]:
    """Return the sentences the BPE vocabulary is trained on: every prompt and answer form."""
    labels = sorted(set(labels))
    lines = [vocabulary.DESCRIBE_PROMPT, vocabulary.PATH_QUESTION, vocabulary.NOTHING + '.']
    for label in labels:
        lines += [q for q, _ in vocabulary.target_questions(label)]
        for bearing in vocabulary.BEARINGS:
            for distance in vocabulary.DISTANCES:
                item = vocabulary.SeenObject(label, bearing, distance)
                lines.append(vocabulary.format_description([item, item]))
    # Answer words in both forms, often, so each becomes a single token.
    for word in ANSWER_WORDS:
        lines += [word, ' ' + word] * 50
    lines += [' '.join(EXTRA_WORDS)] * 5
    return lines


def build_tokenizer(labels: Sequence[str], vocab_size: int = VOCAB_SIZE):
    """
    Build a byte-level BPE tokenizer trained on the question/answer corpus.

    Byte-level, so any free target can be spelled; lowercased, so 'Red Ball' and
    'red ball' are the same to the model.
    """
    from tokenizers import decoders, models, normalizers, pre_tokenizers, Tokenizer, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(tokenizer_corpus(labels), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS_TOKEN, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        extra_special_tokens={'image_token': IMAGE_TOKEN},
        model_input_names=['input_ids', 'attention_mask'])
    fast.add_special_tokens({'additional_special_tokens': [USER_TOKEN, ASSISTANT_TOKEN]})
    check_single_tokens(fast)
    return fast


def check_single_tokens(tokenizer) -> None:
    """Raise if an answer word is not one token (scorers read next-token logits)."""
    for word in ANSWER_WORDS:
        for form in (word, ' ' + word):
            ids = tokenizer.encode(form, add_special_tokens=False)
            if len(ids) != 1:
                raise ValueError(f'answer word {form!r} is {len(ids)} tokens: {ids}')


def build_image_processor(image_size: int = IMAGE_SIZE):
    """Build the image processor: image_size square, [-1, 1], no crop (the whole view counts)."""
    try:
        from transformers import CLIPImageProcessorPil as Proc
    except ImportError:     # older transformers: the one CLIP processor class
        from transformers import CLIPImageProcessor as Proc
    size = {'height': image_size, 'width': image_size}
    return Proc(do_resize=True, size=size, do_center_crop=False, crop_size=size,
                do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
                image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
                do_convert_rgb=True)


def build_processor(tokenizer, image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE):
    """Build the LlavaProcessor with the chat template; one image token per patch (CLS dropped)."""
    from transformers import LlavaProcessor

    # num_additional_image_tokens=1 counts the CLIP CLS token, which 'default' then drops:
    # without it the processor expands one image token fewer than the model produces.
    return LlavaProcessor(
        image_processor=build_image_processor(image_size), tokenizer=tokenizer,
        patch_size=patch_size, vision_feature_select_strategy='default',
        num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE, image_token=IMAGE_TOKEN)


def build_config(tokenizer, image_size: int = IMAGE_SIZE, patch_size: int = PATCH_SIZE,
                 vision_hidden: int = VISION_HIDDEN, vision_layers: int = VISION_LAYERS,
                 text_hidden: int = TEXT_HIDDEN, text_layers: int = TEXT_LAYERS):
    """Build the LlavaConfig for the embedded model."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=vision_hidden, intermediate_size=4 * vision_hidden,
        num_hidden_layers=vision_layers, num_attention_heads=max(1, vision_hidden // 32),
        image_size=image_size, patch_size=patch_size, num_channels=3,
        hidden_act='gelu', projection_dim=vision_hidden)
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=text_hidden,
        intermediate_size=TEXT_INTERMEDIATE * text_hidden // TEXT_HIDDEN,
        num_hidden_layers=text_layers, num_attention_heads=max(1, text_hidden // 32),
        num_key_value_heads=max(1, text_hidden // 32), max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-5, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(
        vision_config=vision, text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        # Last layer: trained from scratch, the usual penultimate layer would leave the
        # last one without gradient.
        vision_feature_layer=-1, vision_feature_select_strategy='default',
        projector_hidden_act='gelu', tie_word_embeddings=True)
    config.pad_token_id = tokenizer.pad_token_id
    return config


def build_embedded_model(tokenizer, seed: int = 0, **config_kwargs):
    """Build a randomly initialised LlavaForConditionalGeneration with generation defaults set."""
    import torch
    from transformers import LlavaForConditionalGeneration

    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(build_config(tokenizer, **config_kwargs))
    set_generation_defaults(model, tokenizer)
    return model


def set_generation_defaults(model, tokenizer) -> None:
    """Set the pad/BOS/EOS ids (a bare tokenizers tokenizer adds none) and greedy decoding."""
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.do_sample = False
    gen.max_new_tokens = 64


def model_vocabulary(folder: str) -> Tuple[str, Optional[List[str]]]:
    """
    Return how replies name a model, and the closed vocabulary its folder declares.

    The vocabulary is None for a model that takes any target (no vocabulary file, or not
    a folder here: a hub id or a served model).
    """
    path = os.path.expanduser(folder)
    if os.path.isdir(path) and os.path.samefile(path, EMBEDDED_MODEL_DIR):
        name = 'the embedded model'
    else:
        name = f'model {os.path.basename(os.path.normpath(folder)) or folder!r}'
    return name, vocabulary.load_vocabulary(folder)


def load_embedded(path: Optional[Path] = None, device: str = 'cpu'):
    """Load (model, processor) from a save_pretrained folder, the shipped one by default."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    path = Path(path or EMBEDDED_MODEL_DIR)
    model = LlavaForConditionalGeneration.from_pretrained(str(path)).to(device).eval()
    processor = AutoProcessor.from_pretrained(str(path))
    return model, processor
