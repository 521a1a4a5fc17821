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
VLMBackend over Hugging Face transformers image-text-to-text models. No ROS imports.

A hub id and a local folder load through the same ``from_pretrained`` path. Closed-set
questions are scored by the log-likelihood of each choice's tokens after
``chat_prompt(processor, question)``; see ``HFBackend.score`` for how the forward
passes are shared.
"""

import ctypes
import gc
import os
import re
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from huggingface_hub.constants import HF_HUB_CACHE
import numpy as np
from PIL import Image as PILImage

from vlm_nav.models import onnx_scoring, registry
from vlm_nav.models.base import (Image, ModelLoadError, Question, ScoredAnswer,
                                 UnsupportedOperation, VLMBackend)
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.packing import (block_layout, block_mask, eager_attention,
                                    open_image_blocks, sliding_window, to_additive)
from vlm_nav.models.prompting import chat_prompt

# owner/name as the hub spells it; anything else that is not a folder is a bad path.
_HUB_ID = re.compile(r'^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$')
_DEVICE = re.compile(r'^(cpu|cuda(:\d+)?)$')
_CACHE_SIZE = 512     # prompts/choices remembered; a robot asks a handful
# What runs the closed-set scoring pass (generation is always torch); see HFBackend.
RUNTIMES = ('auto', 'torch', 'onnxruntime', 'onnxruntime_int8')
# Per-token processor outputs (text 0, image 1, video 2): Qwen's rope index reads them,
# Gemma 3's mask opens its image blocks with them. Rebuilt for every row from its ids.
_TOKEN_TYPE_KEYS = ('mm_token_type_ids', 'token_type_ids')


def answer_text(prompt: str, answer: str, tokenizer: Any = None) -> str:
    r"""
    Return the prompt followed by an answer, as the model should see it.

    Templates that end in text ('ASSISTANT:', 'Assistant:') expect ' yes'; ones that
    end in whitespace or a special token ('<|assistant|>', 'assistant\\n') expect 'yes'.
    Training must build its targets the same way.
    """
    if not prompt or prompt[-1].isspace():
        return prompt + answer
    if tokenizer is not None:
        specials = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
        if any(prompt.endswith(s) for s in specials if s):
            return prompt + answer
    return prompt + ' ' + answer


def _to_pil(image: Image):
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f'expected an HxWx3 RGB image, got shape {array.shape}')
    if array.dtype != np.uint8:
        raise ValueError(f'expected a uint8 image, got {array.dtype}')
    return PILImage.fromarray(array, mode='RGB')


def _common_prefix_len(rows: Sequence[Sequence[int]]) -> int:
    first = rows[0]
    n = min(len(r) for r in rows)
    for i in range(n):
        token = first[i]
        if any(r[i] != token for r in rows):
            return i
    return n


def _softmax(logps: Sequence[float]) -> List[float]:
    x = np.asarray(logps, dtype=np.float64)
    x = np.exp(x - x.max())
    return (x / x.sum()).tolist()


class HFBackend(VLMBackend):
    """
    Generative transformers VLMs: the LLaVA family, BLIP-2, InstructBLIP, SmolVLM and more.

    Any AutoModelForImageTextToText too. ``load_backend`` picks this or ContrastiveBackend
    from the registry family of the model's config.
    """

    kind = registry.GENERATIVE

    def __init__(self, model: str, device: str = 'cpu', dtype: str = 'float32',
                 max_new_tokens: int = 32, allow_download: bool = False,
                 runtime: str = 'auto', max_image_pixels: int = 0) -> None:
        """
        Store settings only; load() does the work.

        :param model: hub id ('owner/name') or a folder written by save_pretrained.
        :param allow_download: fetch a hub id that is not cached; off by default so a
            robot never stalls on the network at start-up (pre-download instead).
        :param runtime: what scores closed-set questions about one image: 'torch';
            'onnxruntime' (the packed pass exported to ONNX Runtime at load, same
            answers as torch) or 'onnxruntime_int8' (that graph int8-quantized by ONNX
            Runtime), CPU only, refused with the reason where impossible; 'auto' =
            onnxruntime_int8 for the embedded model on the CPU (measured fastest there,
            accuracy within half a point: bench/results/model_cpu), torch otherwise or if
            the export fails (diagnostics say why). Generation always runs in torch at
            ``dtype``. See vlm_nav.models.onnx_scoring.
        :param max_image_pixels: image budget of a dynamic-resolution model (Qwen's
            max_pixels; SmolVLM/Idefics3's longest edge = its square root; LFM2-VL's image
            tokens = pixels / (patch x downsample)^2); 0 = the checkpoint's own setting.
            Refused for fixed-resolution models.
        """
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
        self.model_id = str(model)
        self.runtime = runtime
        self.onnx = None            # OnnxScorer once load() exported the scoring pass
        self.onnx_skipped = ''      # runtime auto: why scoring stayed in torch
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.allow_download = allow_download
        self.max_image_pixels = int(max_image_pixels)
        if self.max_image_pixels < 0:
            raise ValueError(f'max_image_pixels must be >= 0, not {max_image_pixels}')
        self._type_keys: set = set()
        self._rope_cache: Dict[Tuple[Tuple[int, ...], Tuple[int, ...]], Any] = {}
        is_dir = os.path.isdir(os.path.expanduser(self.model_id))
        self.name = (os.path.basename(os.path.normpath(self.model_id)) if is_dir
                     else self.model_id)
        self.family: Optional[registry.Family] = None
        self.model: Any = None
        self.processor: Any = None
        self.tokenizer: Any = None
        # Tests flip this to compare the shared-prefix path with the full-batch one.
        self.share_prefix = True
        # One packed pass for one image's questions (False: prefix pass + tails pass).
        self.packed = True
        self._ids_cache: Dict[Tuple[str, Tuple[int, int]], List[int]] = {}
        self._choice_cache: Dict[Tuple[str, str], List[int]] = {}

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        import torch
        device = self._check_device()
        quantize = self.dtype == 'int8'
        if quantize and device.type != 'cpu':
            raise ModelLoadError('dtype int8 (torch dynamic quantization) runs on the CPU, '
                                 f'not {self.device}; use float16/bfloat16 there')
        try:
            dtype = registry.torch_dtype('float32' if quantize else self.dtype)
        except ValueError as err:
            raise ModelLoadError(f"{self.name}: {err} or 'int8'") from None
        self._check_dtype_on_device(dtype, device)
        source = self._resolve_source()
        config, local_only = self._load_config(source)
        family = self._family(config)
        if family.backend != self.kind:
            raise ModelLoadError(
                f"'{self.model_id}' is a {family.name} model, driven by the {family.backend} "
                f'backend, not {type(self).__name__}; load it with vlm_nav.models.load_backend')
        text = getattr(config, 'text_config', None)
        if getattr(text, 'is_encoder_decoder', False) and family.backend == registry.GENERATIVE:
            # Choices are scored as continuations of the prompt in one decoder.
            raise ModelLoadError(
                f"'{self.model_id}' has an encoder-decoder language model "
                f'({text.model_type}, e.g. BLIP-2 Flan-T5); only decoder-only ones are '
                'supported (e.g. BLIP-2 OPT)')
        self.family = family
        self.operations = family.operations
        self._check_memory(config, device)
        import transformers
        cls = getattr(transformers, family.model_class)
        try:
            processor = self._load_processor(family, source, local_only)
            model = cls.from_pretrained(source, dtype=dtype, local_files_only=local_only)
            model = model.to(device).eval()
        except (torch.OutOfMemoryError, MemoryError) as err:
            raise ModelLoadError(
                f"out of memory loading '{self.model_id}' as {self.dtype} on {device}: {err}. "
                'Try bfloat16/float16, a smaller model or another device') from None
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, ImportError) as err:
            raise ModelLoadError(
                f"could not load '{self.model_id}' with {cls.__name__}: "
                f'{type(err).__name__}: {err}') from None
        if getattr(processor, 'image_processor', None) is None:
            raise ModelLoadError(f"'{self.model_id}' has no image processor "
                                 '(processor_config / preprocessor_config.json)')
        if self.max_image_pixels:
            set_image_budget(processor, family, self.max_image_pixels, model.config,
                             self.model_id)
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.model = model
        # From the float model, before torch's int8.
        if self.runtime in ('onnxruntime', 'onnxruntime_int8'):
            self.export_scoring(self.runtime == 'onnxruntime_int8')
        elif self.runtime == 'auto' and device.type == 'cpu' and _is_embedded(source):
            try:
                self.export_scoring(quantize=True)
            except ModelLoadError as err:
                self.onnx_skipped = str(err)
        if quantize:
            self.model = quantize_linear_int8(model)

    def export_scoring(self, quantize: bool = False, log=None) -> None:
        """
        Export the packed scoring pass to ONNX Runtime (int8-quantized by it with ``quantize``).

        On a sample of the navigator's questions about a blank frame.
        """
        import torch
        if self.model.device.type != 'cpu':
            raise ModelLoadError('runtime onnxruntime runs on the CPU here, not '
                                 f'{self.model.device}; use runtime torch')
        if not self.family.shared_prefix or self.family.image_reads_question:
            raise ModelLoadError(f'runtime onnxruntime exports the packed scoring pass with 1-D '
                                 f'positions and a causal block mask, which {self.family.name} '
                                 'models do not use; use runtime torch')
        size = getattr(self.processor.image_processor, 'size', None) or {}
        side = int(size.get('height') or size.get('shortest_edge') or 224)
        blank = PILImage.new('RGB', (side, side), (127, 127, 127))
        with torch.inference_mode():
            sample = self._packed_sample(blank, onnx_scoring.sample_questions())
        if sample is None:
            raise ModelLoadError(f"'{self.model_id}': its scoring pass cannot be packed into "
                                 'one sequence (no shared prefix); use runtime torch')
        try:
            self.onnx = onnx_scoring.OnnxScorer.export(
                self.model, sample, quantize, torch.get_num_threads(), log)
        except onnx_scoring.ExportError as err:
            raise ModelLoadError(f"'{self.model_id}' with runtime onnxruntime: {err}; "
                                 'use runtime torch') from None

    def diagnostics(self) -> Dict[str, str]:
        out = {'scoring_runtime': onnx_scoring.runtime_label(self.onnx)}
        if self.onnx_skipped:
            out['onnxruntime_skipped'] = self.onnx_skipped
        return out

    def _packed_sample(self, pil, questions):
        """Return the packed pass's inputs for these questions, or None where there is none."""
        prompt_ids, image, rows, targets = self._plan(pil, questions)
        keep, prefix = self._keep_and_prefix(prompt_ids, rows, targets)
        return self._packed_inputs(rows, prefix, image, keep) if prefix > 0 else None

    def _family(self, config) -> registry.Family:
        try:
            return registry.family_for(config)
        except registry.UnsupportedModel as err:
            raise ModelLoadError(f"'{self.model_id}' is {err}") from None

    def read_family(self) -> registry.Family:
        """Return the registry family of the model's config, without loading weights."""
        config, _ = self._load_config(self._resolve_source())
        return self._family(config)

    def _prompt(self, question: str) -> str:
        return chat_prompt(self.processor, question, self.family.prompt_template)

    def _check_device(self):
        import torch
        if not _DEVICE.match(self.device):
            raise ModelLoadError(f"unknown device '{self.device}'; use 'cpu', 'cuda' or 'cuda:N'")
        device = torch.device(self.device)
        if device.type == 'cuda':
            if not torch.cuda.is_available():
                raise ModelLoadError(f"device '{self.device}' asked for but CUDA is not available")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ModelLoadError(f"device '{self.device}': only "
                                     f'{torch.cuda.device_count()} CUDA device(s)')
        return device

    def _check_dtype_on_device(self, dtype, device) -> None:
        import torch
        cuda = device.type == 'cuda'
        if cuda and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ModelLoadError(f'{self.device} does not support bfloat16; use float16')
        try:
            # The ops every transformer needs; fails fast where a dtype is not implemented.
            x = torch.ones(2, 8, dtype=dtype, device=device)
            torch.nn.functional.layer_norm(x @ x.T, (2,)).softmax(-1)
        except RuntimeError as err:
            raise ModelLoadError(
                f'dtype {self.dtype} is not supported on {device}: {err}') from None

    def _resolve_source(self) -> str:
        """Return what from_pretrained gets: an existing folder or a well-formed hub id."""
        path = os.path.expanduser(self.model_id)
        if os.path.isdir(path):
            if not os.path.isfile(os.path.join(path, 'config.json')):
                raise ModelLoadError(f"'{self.model_id}' is not a model folder: no config.json "
                                     '(write one with save_pretrained)')
            return path
        looks_like_path = (self.model_id.startswith(('/', '.', '~')) or os.path.exists(path)
                           or not _HUB_ID.match(self.model_id))
        if looks_like_path:
            raise ModelLoadError(f"model folder '{self.model_id}' does not exist (or is not a "
                                 'folder); give a folder written by save_pretrained or a hub id')
        return self.model_id

    def _load_processor(self, family: registry.Family, source: str, local_only: bool):
        """
        Load the processor; one with a video part without it where torchvision is missing.

        transformers builds every part of a processor, and its video processors need
        torchvision (see images_only_processor).
        """
        try:
            return self._from_pretrained(family.processor_class, source, local_only)
        except (OSError, ValueError, ImportError, AttributeError, TypeError) as err:
            from transformers.utils import is_torchvision_available
            if is_torchvision_available():
                raise
            cls = _processor_class(source, local_only)
            if cls is None or 'video_processor' not in cls.get_attributes():
                raise ModelLoadError(
                    f"could not load the processor of '{self.model_id}' ({family.title}): "
                    f'{type(err).__name__}: {err}. Its image processor may exist only as a '
                    'torchvision backend in transformers (LFM2-VL), and torchvision is not '
                    'installed') from None
        return images_only_processor(cls).from_pretrained(source, local_files_only=local_only)

    def _from_pretrained(self, cls_name: str, source: str, local_only: bool):
        import transformers
        return getattr(transformers, cls_name).from_pretrained(source, local_files_only=local_only)

    def _load_config(self, source: str):
        """
        Return (config, local_only), trying the cache first.

        A cached model never touches the network; the hub is tried only with
        allow_download and without HF_HUB_OFFLINE.
        """
        attempts = [True] + ([False] if self.allow_download and not _offline() else [])
        for local_only in attempts:
            try:
                return self._from_pretrained('AutoConfig', source, local_only), local_only
            except OSError as err:
                if os.path.isdir(source):
                    raise ModelLoadError(f"'{source}': unreadable config.json: {err}") from None
                error = err
            except ValueError as err:  # unknown model_type, malformed config
                raise ModelLoadError(f"'{self.model_id}': unusable config: {err}") from None
        raise ModelLoadError(self._not_cached_message(len(attempts) == 1, error))

    def _not_cached_message(self, local_only: bool, err: Exception) -> str:
        if local_only:
            why = ('it is not in the local Hugging Face cache '
                   f'({HF_HUB_CACHE}) and downloads are off '
                   f"({'HF_HUB_OFFLINE is set' if _offline() else 'allow_download=False'})")
        else:
            why = f'the download failed ({type(err).__name__}: {err})'
        tried = 'the local cache' if local_only else 'the local cache and the hub'
        return (f"could not load hub model '{self.model_id}': tried {tried}; {why}. "
                'Fix: pass a local folder saved with save_pretrained, or pre-download it '
                f'(`hf download {self.model_id}` on a machine with network, then copy the '
                'cache or set HF_HOME).')

    def _check_memory(self, config, device) -> None:
        import torch
        try:
            need = registry.memory_by_dtype(config)[self.dtype].total_bytes
        except (RuntimeError, ValueError, TypeError, AttributeError):
            return  # an estimate is a courtesy; loading will tell
        if device.type == 'cuda':
            free = torch.cuda.mem_get_info(device)[0]
        else:
            free = _mem_available_bytes()
        if free is not None and need > free:
            raise ModelLoadError(
                f"'{self.model_id}' needs about {need / 2**30:.1f} GiB (weights and one "
                f'request of KV cache) in {self.dtype} but only {free / 2**30:.1f} GiB is '
                f'free on {device}; use a smaller dtype or model')

    def _require_loaded(self) -> None:
        if self.model is None:
            raise RuntimeError(f'{self.name}: call load() first')

    # ------------------------------------------------------------------ inputs

    def _encode(self, pil, prompt: str) -> Dict[str, Any]:
        """Processor output for one image + prompt: input_ids list and the image tensors."""
        enc = self.processor(images=[pil], text=[prompt], return_tensors='pt')
        ids = enc.pop('input_ids')[0].tolist()
        enc.pop('attention_mask', None)
        for key in _TOKEN_TYPE_KEYS:
            if enc.pop(key, None) is not None:
                self._type_keys.add(key)
        return {'ids': ids, 'image': dict(enc)}

    def _token_types(self, ids) -> Dict[str, Any]:
        """Return the per-token type inputs the processor gives, for a (B, W) id tensor."""
        if not self._type_keys:
            return {}
        types = self._type_ids(ids)
        return {key: types for key in self._type_keys}

    def _type_ids(self, ids):
        """Return 0 (text), 1 (image) or 2 (video) per token of a (B, W) id tensor."""
        import torch
        config = self.model.config
        types = torch.zeros_like(ids)
        for kind, name in ((1, 'image_token_id'), (2, 'video_token_id')):
            token = getattr(config, name, None)
            if token is not None:
                types[ids == token] = kind
        return types

    def _mrope_rows(self, rows, grids) -> List[Any]:
        """
        Return each row's (3, len) M-RoPE positions, from the model's own get_rope_index.

        ``grids[i]`` is row i's image_grid_thw; rows are full prompts (image included).
        Remembered per (row, grid): a robot asks the same questions of same-size frames.
        """
        import torch
        owner = next(m for m in (self.model, getattr(self.model, 'model', None))
                     if hasattr(m, 'get_rope_index'))
        out = []
        for row, grid in zip(rows, grids):
            grid = grid.reshape(-1, 3).cpu()
            key = (tuple(row), tuple(grid.flatten().tolist()))
            if key not in self._rope_cache:
                if len(self._rope_cache) > _CACHE_SIZE:
                    self._rope_cache.clear()
                ids = torch.tensor([row])
                positions, _ = owner.get_rope_index(
                    input_ids=ids, mm_token_type_ids=self._type_ids(ids), image_grid_thw=grid)
                self._rope_cache[key] = positions[:, 0]
            out.append(self._rope_cache[key])
        return out

    def _encode_prompts(self, pil, prompts: Sequence[str]):
        """
        Return (input ids per prompt, image tensors), the image preprocessed once.

        Expanded prompt ids depend on the image only through its size, so they are
        cached per (prompt, size); choice ids per (prompt, choice).
        """
        first = self._encode(pil, prompts[0])
        if len(self._ids_cache) > _CACHE_SIZE:
            self._ids_cache.clear()
        self._ids_cache[(prompts[0], pil.size)] = first['ids']
        ids = []
        for prompt in prompts:
            key = (prompt, pil.size)
            if key not in self._ids_cache:
                self._ids_cache[key] = self._encode(pil, prompt)['ids']
            ids.append(self._ids_cache[key])
        return ids, first['image']

    def _image_inputs(self, image: Dict[str, Any], repeat: int) -> Dict[str, Any]:
        return self._batch_image_inputs([image], [0] * repeat)

    def _batch_image_inputs(self, images: Sequence[Dict[str, Any]],
                            index: Sequence[int]) -> Dict[str, Any]:
        """Image tensors for a batch whose row i shows images[index[i]]."""
        import torch
        out = {}
        for key, value in images[0].items():
            if isinstance(value, torch.Tensor):
                if len(images) == 1:
                    if len(index) > 1:
                        value = value.repeat(len(index), *([1] * (value.dim() - 1)))
                else:
                    value = torch.cat([images[i][key] for i in index])
                if value.is_floating_point():
                    value = value.to(self.model.dtype)
                value = value.to(self.model.device)
            out[key] = value
        return out

    def choice_ids(self, prompt: str, choice: str) -> List[int]:
        """Token ids the tokenizer produces for ``choice`` at the answer position."""
        if not choice:
            raise ValueError('empty choice')
        key = (prompt, choice)
        if key not in self._choice_cache:
            if len(self._choice_cache) > _CACHE_SIZE:
                self._choice_cache.clear()
            self._choice_cache[key] = self._tokenize_choice(prompt, choice)
        return list(self._choice_cache[key])

    def _tokenize_choice(self, prompt: str, choice: str) -> List[int]:
        tok = self.tokenizer
        pre = tok(prompt, add_special_tokens=False)['input_ids']
        text = answer_text(prompt, choice, tok)
        full = tok(text, add_special_tokens=False)['input_ids']
        if full[:len(pre)] == pre and len(full) > len(pre):
            return full[len(pre):]
        # A merge across the prompt/answer boundary: spell the answer on its own.
        return tok(text[len(prompt):], add_special_tokens=False)['input_ids']

    # ------------------------------------------------------------------ scoring

    def score(self, image: Image, questions: Sequence[Question]) -> List[ScoredAnswer]:
        """
        Probabilities over each question's choices (softmax of choice log-likelihoods).

        All (question, choice) continuations become rows ``prompt + choice[:-1]``
        (deduplicated: single-token choices of one question share one row). With
        left padding every row ends at the same index, so the forward keeps only the
        last K positions' logits (K = longest choice; 1 when all choices are single
        tokens). Where the family allows it the common prefix (chat header + image)
        is prefilled once, its KV cache expanded over the rows, and only the question
        tails and choice tokens are run, batched, in one more pass. Otherwise all rows
        run in one padded batch with the image repeated.
        """
        self._require_loaded()
        self.require(registry.SCORE)
        if not questions:
            return []
        import torch
        pil = _to_pil(image)
        with torch.inference_mode():
            if self.family.image_reads_question:
                # The image inputs depend on the question: one question per pass.
                logps = [self._choice_logprobs(pil, [q])[0] for q in questions]
            else:
                logps = self._choice_logprobs(pil, questions)
        return [ScoredAnswer(list(choices), _softmax(lp))
                for (_, choices), lp in zip(questions, logps)]

    def score_batch(self, requests: Sequence[Tuple[Image, Sequence[Question]]]
                    ) -> List[List[ScoredAnswer]]:
        """
        Score several images' questions in the same forward passes.

        Rows of all requests in one batch; with a shared prefix, one prefill row per image.
        """
        self._require_loaded()
        self.require(registry.SCORE)
        pils = [_to_pil(image) for image, _ in requests]
        batchable = (len(requests) > 1 and not self.family.image_reads_question
                     and all(questions for _, questions in requests)
                     # Same size: same expanded prompt ids and image tensor shapes.
                     and len({p.size for p in pils}) == 1)
        if not batchable:
            return super().score_batch(requests)
        import torch
        with torch.inference_mode():
            logps = self._batch_logprobs([(pil, qs) for pil, (_, qs) in zip(pils, requests)])
        return [[ScoredAnswer(list(choices), _softmax(lp))
                 for (_, choices), lp in zip(questions, per_request)]
                for (_, questions), per_request in zip(requests, logps)]

    def _plan(self, pil, questions: Sequence[Question]):
        """Prompt ids, the deduplicated rows, and per choice (row, target ids)."""
        prompts = [self._prompt(q) for q, _ in questions]
        prompt_ids, image = self._encode_prompts(pil, prompts)
        rows: Dict[Tuple[int, ...], int] = {}
        targets: List[List[Tuple[int, List[int]]]] = []
        for prompt, ids_q, (_, choices) in zip(prompts, prompt_ids, questions):
            if not choices:
                raise ValueError(f"question '{prompt}' has no choices")
            per_choice = []
            for choice in choices:
                ids = self.choice_ids(prompt, choice)
                key = tuple(ids_q + ids[:-1])
                per_choice.append((rows.setdefault(key, len(rows)), ids))
            targets.append(per_choice)
        return prompt_ids, image, [list(k) for k in rows], targets

    def _choice_logprobs(self, pil, questions: Sequence[Question]) -> List[List[float]]:
        return self._batch_logprobs([(pil, questions)])[0]

    def _batch_logprobs(self, requests) -> List[List[List[float]]]:
        """Per request, per question, the choices' log-likelihoods; all in one batch."""
        import torch
        plans = [self._plan(pil, questions) for pil, questions in requests]
        rows: List[List[int]] = []
        row_image: List[int] = []
        offsets = []
        for i, (_, _, request_rows, _) in enumerate(plans):
            offsets.append(len(rows))
            rows += request_rows
            row_image += [i] * len(request_rows)
        images = [plan[1] for plan in plans]
        keep, prefix = self._keep_and_prefix([ids for plan in plans for ids in plan[0]], rows,
                                             [per for plan in plans for per in plan[3]])
        logits = None
        if prefix > 0 and len(images) == 1 and self.packed and self.family.packs:
            logits = self._forward_packed(rows, prefix, images[0], keep)
        if logits is None and prefix > 0:
            logits = self._forward_shared(rows, prefix, images, row_image, keep)
        if logits is None:
            logits = self._forward_full(rows, images, row_image, keep)
        logp = torch.log_softmax(logits.float(), dim=-1)
        out = []
        for (_, _, _, targets), offset in zip(plans, offsets):
            per_request = []
            for per_choice in targets:
                scores = []
                for row, ids in per_choice:
                    # Row ends with choice[:-1]; position keep-m+t predicts choice token t.
                    m = len(ids)
                    pos = torch.arange(keep - m, keep)
                    scores.append(float(logp[offset + row, pos, torch.tensor(ids)].sum()))
                per_request.append(scores)
            out.append(per_request)
        return out

    def _keep_and_prefix(self, prompt_ids, rows, targets) -> Tuple[int, int]:
        """
        Return (logit positions kept per row, shared prefix length).

        Positions kept: the longest choice. Prefix: 0 for a single row, which is one pass
        anyway.
        """
        keep = max(len(ids) for per in targets for _, ids in per)
        return keep, self._shared_prefix_len(prompt_ids, rows) if len(rows) > 1 else 0

    def _shared_prefix_len(self, prompt_ids, rows) -> int:
        """Tokens all rows share, image included; 0 where sharing is off or unsafe."""
        if not (self.share_prefix and self.family and self.family.shares_prefix):
            return 0
        # Every row must keep at least one token of its prompt, so the position that
        # predicts the first choice token is always in the second pass.
        n = min(_common_prefix_len(rows), min(len(p) for p in prompt_ids) - 1)
        image_token = getattr(self.model.config, 'image_token_id', None)
        if n <= 0 or image_token is None:
            return 0
        if any(image_token in row[n:] for row in rows):
            return 0  # an image token after the shared part (question before image)
        return n

    def _left_pad(self, seqs: Sequence[Sequence[int]]):
        import torch
        width = max(len(s) for s in seqs)
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else pad
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, width - len(s):] = 1
        return ids, mask

    def _forward_shared(self, rows, prefix: int, images, row_image, keep: int):
        import torch
        device = self.model.device
        # One prefill row per image (the prefix ids are the same, the pictures are not).
        head = torch.tensor([rows[0][:prefix]] * len(images), dtype=torch.long)
        extra, tail_positions = {}, None
        if self.family.mrope:
            grids = [images[i]['image_grid_thw'] for i in row_image]
            full = self._mrope_rows(rows, grids)
            first = {}
            for r, i in enumerate(row_image):
                first.setdefault(i, full[r][:, :prefix])
            extra['position_ids'] = torch.stack(
                [first[i] for i in range(len(images))], dim=1).to(device)
            tail_positions = [p[:, prefix:] for p in full]
        head = head.to(device)
        out = self.model(input_ids=head, attention_mask=torch.ones_like(head),
                         use_cache=True, logits_to_keep=1,
                         **self._batch_image_inputs(images, range(len(images))),
                         **self._token_types(head), **extra)
        cache = out.cache
        if len(images) > 1 or self.family.unmaskable_layers:
            # index_select per layer: convolution states have no batch_repeat_interleave.
            cache.reorder_cache(torch.tensor(row_image, dtype=torch.long, device=device))
        elif len(rows) > 1:
            cache.batch_repeat_interleave(len(rows))
        if self._right_pad_tails():
            return self._tails_right_padded(rows, prefix, cache, tail_positions, keep)
        tails, tail_mask = self._left_pad([r[prefix:] for r in rows])
        # Pads sit between the prefix and each tail: masked out, and positions skip them.
        position_ids = prefix + (tail_mask.cumsum(-1) - 1).clamp(min=0)
        if tail_positions is not None:
            padded = torch.zeros((3, len(rows), tails.shape[1]), dtype=torch.long)
            for r, p in enumerate(tail_positions):
                padded[:, r, tails.shape[1] - p.shape[1]:] = p
            position_ids = padded
        mask = torch.cat([torch.ones((len(rows), prefix), dtype=torch.long), tail_mask], dim=1)
        out = self.model(input_ids=tails.to(device), attention_mask=mask.to(device),
                         position_ids=position_ids.to(device), cache=cache,
                         use_cache=True, logits_to_keep=keep)
        return out.logits

    def _right_pad_tails(self) -> bool:
        """
        Tell whether the tails after a cached prefix must follow it without a gap.

        Sliding-window layers measure their window in cache slots and convolutions read
        the slots before a token whatever the mask: pads between prefix and tail would
        shift both, so such models get their tails right-padded.
        """
        text = self.model.config.get_text_config()
        return (self.family.unmaskable_layers
                or 'sliding_attention' in (getattr(text, 'layer_types', None) or ()))

    def _tails_right_padded(self, rows, prefix: int, cache, tail_positions, keep: int):
        """Run the tails right after the cached prefix, pads at their ends; (rows, keep, V)."""
        import torch
        device = self.model.device
        lengths = [len(r) - prefix for r in rows]
        width = max(lengths)
        tails = torch.full((len(rows), width), self._pad_id(), dtype=torch.long)
        tail_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            tails[i, :lengths[i]] = torch.tensor(row[prefix:])
            tail_mask[i, :lengths[i]] = 1
        position_ids = prefix + torch.arange(width).expand(len(rows), -1)
        if tail_positions is not None:
            position_ids = torch.zeros((3, len(rows), width), dtype=torch.long)
            for r, p in enumerate(tail_positions):
                position_ids[:, r, :p.shape[1]] = p
        # Each row's last `keep` tokens (a row with a shorter choice uses fewer of them).
        wanted = [[max(0, n - keep + j) for j in range(keep)] for n in lengths]
        kept = sorted({i for row in wanted for i in row})
        mask = torch.cat([torch.ones((len(rows), prefix), dtype=torch.long), tail_mask], dim=1)
        out = self.model(input_ids=tails.to(device), attention_mask=mask.to(device),
                         position_ids=position_ids.to(device), cache=cache, use_cache=True,
                         logits_to_keep=torch.tensor(kept, device=device))
        index = torch.tensor([[kept.index(i) for i in row] for row in wanted], device=device)
        return out.logits.gather(1, index[..., None].expand(-1, -1, out.logits.shape[-1]))

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return 0 if pad is None else pad

    def _forward_packed(self, rows, prefix: int, image, keep: int):
        """
        Run all rows in ONE forward pass of one sequence.

        The shared prefix, then each row's tail, a tail attending to the prefix and to
        itself only, at the positions it has in its own row (the layout the embedded model
        was trained with). As cheap as one prefill plus the tail tokens: no second pass,
        no KV cache copied per row.

        Returns (rows, keep, vocab) logits like the other paths, or None where the model
        refuses a 4-D attention mask (then the two-pass shared path runs instead).
        """
        inputs = self._packed_inputs(rows, prefix, image, keep)
        if self.onnx is not None and self.onnx.accepts(inputs):
            import torch
            return torch.from_numpy(self.onnx.run(inputs)[0]).reshape(len(rows), keep, -1)
        try:
            out = self.model(use_cache=False, logits_to_keep=inputs.pop('keep_index'),
                             **inputs)
        except (TypeError, ValueError, RuntimeError, IndexError):
            self.packed = False           # this model wants 2-D masks: two passes instead
            return None
        return out.logits[0].reshape(len(rows), keep, -1)

    def _packed_inputs(self, rows, prefix: int, image, keep: int) -> Dict[str, Any]:
        """
        Return the packed pass's model inputs (logits_to_keep as 'keep_index').

        The shared prefix, then each row's tail as a block (vlm_nav.models.packing).
        """
        import torch
        device = self.model.device
        tails = [r[prefix:] for r in rows]
        seq = list(rows[0][:prefix]) + [t for tail in tails for t in tail]
        segments, positions = block_layout(prefix, [len(tail) for tail in tails])
        keep_index = []
        end = prefix
        for tail in tails:
            end += len(tail)
            # The last `keep` positions of this row; the ones a choice uses always lie in
            # its own tail (every tail keeps >= 1 prompt token plus choice[:-1]).
            keep_index += [max(0, end - keep + j) for j in range(keep)]
        if self.family.mrope:
            # Each tail at the (t, h, w) triples it has in its own prompt, by the model's rule.
            full = self._mrope_rows(rows, [image['image_grid_thw']] * len(rows))
            position_ids = torch.cat([full[0][:, :prefix]] + [p[:, prefix:] for p in full],
                                     dim=1)[:, None]
        else:
            position_ids = torch.tensor([positions])
        return {'input_ids': torch.tensor([seq], device=device),
                'attention_mask': self._packed_mask(seq, segments, positions, device),
                'position_ids': position_ids.to(device),
                'keep_index': torch.tensor(keep_index, device=device),
                **self._image_inputs(image, 1)}

    def _packed_mask(self, seq, segments, positions, device):
        """
        Return the packed row's attention mask: the block mask, plus what the family adds.

        Gemma 3: its image blocks open both ways and its sliding layers get their window
        by position, as a dict by layer type (the model takes it as it is).
        """
        import torch
        additive = eager_attention(self.model.config)
        if not self.family.bidirectional_image:
            return block_mask(torch.tensor([segments]), additive, self.model.dtype).to(device)
        allowed = open_image_blocks(block_mask(torch.tensor([segments])),
                                    torch.tensor([seq]) == self.model.config.image_token_id)
        text = self.model.config.get_text_config()
        masks = {'full_attention': allowed}
        window = getattr(text, 'sliding_window', None)
        if window and 'sliding_attention' in (getattr(text, 'layer_types', None) or ()):
            masks['sliding_attention'] = sliding_window(allowed, torch.tensor([positions]),
                                                        window)
        return {kind: (to_additive(m, self.model.dtype) if additive else m).to(device)
                for kind, m in masks.items()}

    def _forward_full(self, rows, images, row_image, keep: int):
        ids, mask = self._left_pad(rows)
        device = self.model.device
        kwargs = {}
        if self.family is not None and self.family.position_ids:
            kwargs['position_ids'] = ((mask.cumsum(-1) - 1).clamp(min=0)).to(device)
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                         logits_to_keep=keep, **self._batch_image_inputs(images, row_image),
                         **self._token_types(ids.to(device)), **kwargs)
        return out.logits

    def _reference_score(self, image: Image,
                         questions: Sequence[Question]) -> List[ScoredAnswer]:
        """Naive scoring for tests: the whole prompt + choice re-run for every choice."""
        self._require_loaded()
        import torch
        pil = _to_pil(image)
        answers = []
        with torch.inference_mode():
            for question, choices in questions:
                prompt = self._prompt(question)
                enc = self._encode(pil, prompt)
                logps = []
                for choice in choices:
                    ids = self.choice_ids(prompt, choice)
                    seq = torch.tensor([enc['ids'] + ids], device=self.model.device)
                    out = self.model(input_ids=seq, **self._image_inputs(enc['image'], 1),
                                     **self._token_types(seq))
                    lp = torch.log_softmax(out.logits[0].float(), dim=-1)
                    n = len(enc['ids'])
                    logps.append(sum(float(lp[n - 1 + t, tok]) for t, tok in enumerate(ids)))
                answers.append(ScoredAnswer(list(choices), _softmax(logps)))
        return answers

    # ------------------------------------------------------------------ generation

    def generate_ids(self, image: Image, prompt: str, max_new_tokens: Optional[int] = None,
                     min_new_tokens: int = 0,
                     between_steps: Optional[Callable[[], None]] = None) -> List[int]:
        """
        Generate greedy new token ids (prompt excluded), at most max_new_tokens.

        For benchmarks, at least min_new_tokens: end-of-text is held off until then;
        between_steps as in VLMBackend.generate.
        """
        return self.generate_ids_batch([image], prompt, max_new_tokens, min_new_tokens,
                                       between_steps)[0]

    def generate_ids_batch(self, images: Sequence[Image], prompt: str,
                           max_new_tokens: Optional[int] = None, min_new_tokens: int = 0,
                           between_steps: Optional[Callable[[], None]] = None
                           ) -> List[List[int]]:
        """
        Run generate_ids for several images of one size, decoded together.

        Each row's ids end at its end-of-text, as they would alone. Images whose prompts
        expand to different lengths (a model that tiles by image size) run one after
        another.
        """
        self._require_loaded()
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class BetweenSteps(StoppingCriteria):
            """Not a stop rule: generate's hook after each step, used to run between_steps."""

            def __call__(self, input_ids, scores, **kwargs):
                between_steps()
                return torch.zeros(input_ids.shape[0], dtype=torch.bool,
                                   device=input_ids.device)
        budget = self.max_new_tokens if max_new_tokens is None else int(max_new_tokens)
        if budget <= 0 or not images:
            return [[] for _ in images]
        encoded = [self._encode(_to_pil(image), self._prompt(prompt)) for image in images]
        if len({tuple(enc['ids']) for enc in encoded}) > 1:
            return [self.generate_ids_batch([image], prompt, max_new_tokens, min_new_tokens,
                                            between_steps)[0] for image in images]
        hooks = StoppingCriteriaList([BetweenSteps()] if between_steps else [])
        ids = torch.tensor([encoded[0]['ids']] * len(images), device=self.model.device)
        tok = self.tokenizer
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids),
                **self._batch_image_inputs([enc['image'] for enc in encoded],
                                           range(len(images))),
                **self._token_types(ids), max_new_tokens=budget,
                min_new_tokens=min(int(min_new_tokens), budget),
                do_sample=False, num_beams=1, stopping_criteria=hooks,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                else tok.eos_token_id)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        rows = []
        for row in out[:, ids.shape[1]:].tolist():
            end = next((i + 1 for i, tok_id in enumerate(row) if tok_id in eos), len(row))
            rows.append(row[:end])
        return rows

    def generate(self, image: Image, prompt: str, max_new_tokens: Optional[int] = None,
                 between_steps: Optional[Callable[[], None]] = None) -> str:
        """Greedy free-text answer to ``prompt`` (wrapped by chat_prompt), new text only."""
        return self.generate_batch([image], prompt, max_new_tokens, between_steps)[0]

    def generate_batch(self, images: Sequence[Image], prompt: str,
                       max_new_tokens: Optional[int] = None,
                       between_steps: Optional[Callable[[], None]] = None) -> List[str]:
        """generate() for several images of one size, decoded together."""
        self._require_loaded()
        self.require(registry.ASK)
        rows = self.generate_ids_batch(images, prompt, max_new_tokens,
                                       between_steps=between_steps)
        return [self.tokenizer.decode(row, skip_special_tokens=True).strip() for row in rows]


_THERE_IS = re.compile(r'^\s*is there (?:an? |any |the )?(?P<thing>[^?]+?)\s*\?\s*$', re.I)


def match_caption(question: str, template: str) -> Optional[str]:
    """Fill the template with the thing of 'Is there a {thing}?'; None for other questions."""
    found = _THERE_IS.match(question)
    return template.format(choice=found.group('thing')) if found else None


class ContrastiveBackend(HFBackend):
    """
    Image-text similarity models (CLIP, BLIP-2 retrieval): scores only, no text.

    Choices are names of things: each becomes ``family.choice_template`` ('a photo of a
    {choice}') and the probabilities are the softmax of the image's similarity logits
    over them (CLIP's zero-shot classification), all questions' texts in one forward.
    A yes/no 'Is there a {thing}?' is answered by an image-text matching head where
    the family has one (MATCH): P(yes) = P(image matches 'a photo of a {thing}').
    """

    kind = registry.CONTRASTIVE

    def generate_ids(self, image: Image, prompt: str, max_new_tokens: Optional[int] = None,
                     min_new_tokens: int = 0,
                     between_steps: Optional[Callable[[], None]] = None) -> List[int]:
        self._require_loaded()
        raise self._cannot(registry.ASK)

    def generate(self, image: Image, prompt: str, max_new_tokens: Optional[int] = None,
                 between_steps: Optional[Callable[[], None]] = None) -> str:
        self._require_loaded()
        raise self._cannot(registry.ASK)

    def require(self, operation: str) -> None:
        if operation not in self.operations:
            raise self._cannot(operation)

    def _cannot(self, operation: str) -> UnsupportedOperation:
        return UnsupportedOperation(
            f"model '{self.name}' ({self.family.title}) cannot {operation}: it generates no "
            "text; it scores choices that name things ('which of these is in view', the "
            'question wording is not read)'
            + (" and answers 'Is there a {thing}?' with yes/no"
               if registry.MATCH in self.operations else ''))

    def score(self, image: Image, questions: Sequence[Question]) -> List[ScoredAnswer]:
        self._require_loaded()
        if not questions:
            return []
        import torch
        pil = _to_pil(image)
        plan = [self._plan_question(q, tuple(c)) for q, c in questions]
        texts = [t for kind, items in plan if kind == 'choices' for t in items]
        captions = [c for kind, c in plan if kind == 'match']
        with torch.inference_mode():
            similarity = self._similarity(pil, texts) if texts else None
            matches = self._match(pil, captions) if captions else None
        answers, t, m = [], 0, 0
        for (_, choices), (kind, items) in zip(questions, plan):
            if kind == 'choices':
                probs = _softmax(similarity[t:t + len(items)])
                t += len(items)
            else:
                yes = matches[m]
                m += 1
                probs = [yes if c == 'yes' else 1.0 - yes for c in choices]
            answers.append(ScoredAnswer(list(choices), probs))
        return answers

    def score_batch(self, requests: Sequence[Tuple[Image, Sequence[Question]]]
                    ) -> List[List[ScoredAnswer]]:
        # One request at a time: a CLIP pass is already one image against all texts.
        return [self.score(image, questions) for image, questions in requests]

    def _plan_question(self, question: str, choices: Tuple[str, ...]):
        if not choices:
            raise ValueError(f"question '{question}' has no choices")
        if any(not c for c in choices):
            raise ValueError('empty choice')
        if set(choices) == {'yes', 'no'} and len(choices) == 2:
            caption = match_caption(question, self.family.choice_template)
            if registry.MATCH in self.operations and caption is not None:
                return 'match', caption
            what = ("only 'Is there a {thing}?' questions"
                    if registry.MATCH in self.operations else 'no yes/no questions')
            raise UnsupportedOperation(
                f"model '{self.name}' ({self.family.title}) answers {what}: it matches "
                f"images to texts and can't read '{question}'; give choices that name "
                'things, or use a generative model')
        return 'choices', [self.family.choice_template.format(choice=c) for c in choices]

    def _inputs(self, pil, texts: Sequence[str]):
        enc = self.processor(images=[pil], text=list(texts), return_tensors='pt',
                             padding=True)
        return {k: (v.to(self.model.dtype) if v.is_floating_point() else v).to(self.model.device)
                for k, v in enc.items()}

    def _similarity(self, pil, texts: Sequence[str]) -> List[float]:
        """Scaled image-text similarity logits of one image against every text."""
        out = self.model(**self._inputs(pil, texts))
        return out.logits_per_image[0].float().tolist()

    def _match(self, pil, captions: Sequence[str]) -> List[float]:
        """P(image matches caption) from the ITM head, per caption."""
        import torch
        inputs = self._inputs(pil, captions)
        inputs['pixel_values'] = inputs['pixel_values'].expand(len(captions), -1, -1, -1)
        out = self.model(**inputs, use_image_text_matching_head=True)
        return torch.softmax(out.logits_per_image.float(), dim=-1)[:, 1].tolist()


def quantize_linear_int8(model):
    """
    Quantize with torch dynamic INT8: every Linear and every Embedding.

    Linear: int8 weights, activations quantized on the fly; Embedding: 8-bit rows,
    weight-only. Then freed float pages go back to the OS, so the resident set shows the
    saving.
    """
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, float_qparams_weight_only_qconfig
    # In place: the float modules are dropped now, not when the caller lets go.
    model = torch.ao.quantization.quantize_dynamic(
        model, {torch.nn.Linear: default_dynamic_qconfig,
                torch.nn.Embedding: float_qparams_weight_only_qconfig},
        dtype=torch.qint8, inplace=True)
    release_memory()
    return model


def _processor_class(source: str, local_only: bool):
    """Return the transformers processor class a checkpoint names, or None."""
    import json

    import transformers
    from transformers.utils import cached_file
    for name in ('processor_config.json', 'preprocessor_config.json'):
        try:
            path = cached_file(source, name, local_files_only=local_only,
                               _raise_exceptions_for_missing_entries=False)
        except OSError:
            path = None
        if path:
            with open(path) as f:
                cls = json.load(f).get('processor_class')
            if cls:
                return getattr(transformers, cls, None)
    return None


def set_image_budget(processor, family: registry.Family, pixels: int, config, name: str):
    """
    Cap the image size a dynamic-resolution processor produces at about ``pixels``.

    Fewer pixels, fewer image tokens: the prefill (and the vision tower) cost falls with
    them. Raises ModelLoadError for a fixed-resolution family.
    """
    image = processor.image_processor
    if family.image_budget == 'pixels':
        size = dict(image.size)
        size['longest_edge'] = pixels
        size['shortest_edge'] = min(size.get('shortest_edge') or pixels, pixels)
        image.size = size
    elif family.image_budget == 'longest_edge':
        image.size = {**dict(image.size), 'longest_edge': max(1, int(pixels ** 0.5))}
    elif family.image_budget == 'image_tokens':
        vision = config.vision_config
        per_token = (vision.patch_size * getattr(config, 'downsample_factor', 1)) ** 2
        image.max_image_tokens = max(1, pixels // per_token)
        image.min_image_tokens = min(image.min_image_tokens, image.max_image_tokens)
    else:
        raise ModelLoadError(
            f"'{name}' ({family.title}) has a fixed input resolution: max_image_pixels "
            f'{pixels} cannot change it; set 0')


class _NoVideoProcessor:
    """A processor's video part where there is none: settings unset, videos refused."""

    num_frames = None   # SmolVLM2's chat template reads these defaults
    fps = None

    def __call__(self, *args, **kwargs):
        raise ImportError('video input needs transformers video processors, which need '
                          'torchvision; vlm_nav passes still images only')


def images_only_processor(cls):
    """
    Return a subclass of processor class ``cls`` made of its image processor and tokenizer.

    transformers' video processors need torchvision, which does not install beside the
    CPU torch here; a processor with a video part (Qwen-VL, SmolVLM2) then fails to build
    or load although stills need none of it. The subclass has the same name, so it saves
    the same processor_config.json and reads a hub checkpoint's files, video config aside.
    """
    def get_attributes(klass):
        return [a for a in cls.get_attributes() if a != 'video_processor']

    def get_arguments(klass, *args, **kwargs):
        # The parts, with None where the class takes its video processor.
        parts = cls._get_arguments_from_pretrained.__func__(klass, *args, **kwargs)
        parts.insert(cls.get_attributes().index('video_processor'), None)
        return parts
    return type(cls.__name__, (cls,), {
        'get_attributes': classmethod(get_attributes),
        '_get_arguments_from_pretrained': classmethod(get_arguments),
        'video_processor': _NoVideoProcessor(),
        '__module__': cls.__module__, '__doc__': cls.__doc__})


def _is_embedded(source: str) -> bool:
    return os.path.isdir(source) and os.path.samefile(source, EMBEDDED_MODEL_DIR)


def release_memory() -> None:
    """
    Collect garbage and give freed heap pages back to the OS.

    So the resident set shows what is really held (glibc keeps small freed blocks
    otherwise).
    """
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError:
        pass


def _offline() -> bool:
    return os.environ.get('HF_HUB_OFFLINE', '').strip().lower() in ('1', 'true', 'yes', 'on')


def _mem_available_bytes() -> Optional[int]:
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
