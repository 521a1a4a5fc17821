"""Small random-weight models of real transformers classes, for tests and benchmarks.

Each builder writes a folder with ``save_pretrained`` (config, safetensors weights,
tokenizer, processor with a chat template, generation config), so the folder loads
through exactly the same ``from_pretrained`` path as a Hugging Face hub model.
Nothing is downloaded: the tokenizer is trained here with ``tokenizers``.
"""

from pathlib import Path
from typing import Iterator, Union

from vlm_nav.models.embedded import set_generation_defaults
from vlm_nav.perception import BEARINGS, DESCRIBE_PROMPT, DISTANCES, PATH_QUESTION, YES_NO

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


def build_tokenizer(extra_special: tuple = (), vocab_size: int = 400):
    """Byte-level BPE (no <unk>: any typed target can be spelled) as a fast tokenizer."""
    from tokenizers import decoders, models, pre_tokenizers, Tokenizer, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = SPECIAL_TOKENS + list(extra_special)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token='<s>', eos_token='</s>', pad_token='<pad>',
        extra_special_tokens={'image_token': IMAGE_TOKEN})


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
    # else the processor expands one <image> too few (see notes/vlm-facts.md).
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy='default', chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1)
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return str(save_dir)


def build_tiny_generic(save_dir: PathLike, seed: int = 0, image_size: int = 64,
                       patch_size: int = 8) -> str:
    """Save a small Idefics3ForConditionalGeneration (SmolVLM's shape) to save_dir.

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
