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
Closed-set scoring through ONNX Runtime: the packed scoring pass exported once.

HFBackend answers one image's closed-set questions in ONE forward pass (the shared
image + prompt prefix, then every question's tail; see ``HFBackend._forward_packed``).
For a small model on a CPU that pass is mostly framework overhead and small matrix
products, which ONNX Runtime runs with less of both; with ``int8`` its dynamic
quantization (int8 MatMul weights, activations quantized on the fly) cuts the products.
Generation (descriptions, free-text Ask) stays in torch: it needs the KV cache loop.

The graph is exported with torch.onnx's TorchScript exporter from the loaded model on a
sample of the real inputs (the width of the packed sequence and the number of kept
positions are dynamic axes), checked against torch on that sample, and held in memory:
nothing is written next to the model. A copy is kept in a cache ($VLM_NAV_CACHE, else
~/.cache/vlm_nav/onnx; VLM_NAV_CACHE=off turns it off) under a hash of the weights, the
config, the versions and this exporter, so the next start of the same model loads it
instead of exporting and quantizing again (~2 s for the embedded model on 2 cores).
"""

import hashlib
import logging
import math
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Sequence
import warnings

import numpy as np

from vlm_nav.perception.vocabulary import target_questions

# Fixed leading inputs of the packed pass; the image tensors the processor gives follow.
TEXT_INPUTS = ('input_ids', 'attention_mask', 'position_ids', 'keep_index')
# Export check: largest |log-prob difference| accepted between the graph and torch (fp32).
EXPORT_TOLERANCE = 1e-3
# Models with more bytes of weights than this are exported afresh each time: hashing them
# and keeping a second copy on disk would cost more than the export.
CACHE_MAX_BYTES = 256 * 2 ** 20


def cache_dir() -> Optional[str]:
    """Where exported graphs are kept between starts; None when caching is off."""
    configured = os.environ.get('VLM_NAV_CACHE', '')
    if configured.lower() in ('off', '0', 'none'):
        return None
    if configured:
        return os.path.join(configured, 'onnx')
    return os.path.join(os.path.expanduser('~'), '.cache', 'vlm_nav', 'onnx')


def cache_key(model, names: Sequence[str], image_shapes: Dict[str, tuple],
              quantize: bool) -> Optional[str]:
    """
    Hash everything the exported graph depends on; None for a model too big to cache.

    Weights, config, input layout, int8 or not, the libraries and this file.
    """
    import onnxruntime
    import torch
    import transformers
    state = model.state_dict()
    if sum(t.numel() * t.element_size() for t in state.values()) > CACHE_MAX_BYTES:
        return None
    digest = hashlib.sha256()
    digest.update(repr((torch.__version__, onnxruntime.__version__, transformers.__version__,
                        type(model).__name__, list(names), sorted(image_shapes.items()),
                        quantize)).encode())
    digest.update(model.config.to_json_string().encode())
    with open(__file__, 'rb') as source:
        digest.update(source.read())
    for name in sorted(state):
        tensor = state[name].detach().contiguous().cpu()
        digest.update(f'{name}:{tensor.dtype}:{tuple(tensor.shape)}'.encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:40]


class ExportError(RuntimeError):
    """The packed scoring pass could not be exported or disagrees with torch."""


def _wrapper(model, image_keys: Sequence[str]):
    import torch

    class PackedPass(torch.nn.Module):
        """model(...) of the packed pass as a function of positional tensors -> logits."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, keep_index, *images):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                             position_ids=position_ids, logits_to_keep=keep_index,
                             use_cache=False, **dict(zip(image_keys, images)))
            return out.logits

    return PackedPass().eval()


class OnnxScorer:
    """An ONNX Runtime session for one model's packed scoring pass."""

    def __init__(self, session, image_shapes: Dict[str, tuple], quantized: bool) -> None:
        """
        Hold a session and what its graph was exported with.

        :param image_shapes: the image inputs in the graph's order, with the shapes
            they were exported with (fixed: only the text side has dynamic axes).
        """
        self.session = session
        self.image_shapes = dict(image_shapes)
        self.image_keys = list(image_shapes)
        self.quantized = quantized
        self.from_cache = False

    @classmethod
    def export(cls, model, inputs: Dict[str, Any], quantize: bool, threads: int,
               log=None) -> 'OnnxScorer':
        """
        Export ``model``'s packed pass on sample ``inputs``, check it, maybe quantize it.

        ``inputs`` are the tensors ``HFBackend._packed_inputs`` builds; ``quantize``: to
        int8.
        """
        import torch
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ExportError(f'onnxruntime is not installed ({err}); '
                              'pip install onnxruntime onnx, or use runtime torch') from None
        image_shapes = {k: tuple(v.shape) for k, v in inputs.items() if k not in TEXT_INPUTS}
        image_keys = list(image_shapes)
        names = list(TEXT_INPUTS) + image_keys
        args = tuple(inputs[k] for k in names)
        dynamic = {'input_ids': {1: 'width'}, 'attention_mask': {2: 'width', 3: 'width'},
                   'position_ids': {1: 'width'}, 'keep_index': {0: 'kept'},
                   'logits': {1: 'kept'}}
        wrapper = _wrapper(model, image_keys)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3          # warnings about unused initializers: noise

        def session(path: str, quantized: bool) -> 'OnnxScorer':
            try:
                return cls(ort.InferenceSession(path, options,
                                                providers=['CPUExecutionProvider']),
                           image_shapes, quantized)
            except Exception as err:  # noqa: B902 - ONNX Runtime refuses the graph
                raise ExportError(f'ONNX Runtime cannot load the exported scoring pass: '
                                  f'{type(err).__name__}: {str(err)[:300]}') from None

        with torch.no_grad():
            expected = wrapper(*args).float().numpy()
        folder = cache_dir()
        key = cache_key(model, names, image_shapes, quantize) if folder else None
        cached = os.path.join(folder, f'{key}.onnx') if key else None
        if cached and os.path.exists(cached):
            # float32 must match torch; int8 must match what it gave when it was exported
            # (kept beside it): either way a damaged or foreign file is exported afresh.
            try:
                scorer = session(cached, quantized=quantize)
                reference = np.load(cached + '.npy') if quantize else expected
                error = scorer.check(inputs, reference)
            except Exception as err:  # noqa: B902 - unreadable, or not this graph
                error, reason = math.inf, f'{type(err).__name__}: {str(err)[:200]}'
            else:
                reason = f'log-prob difference {error:.2g}'
            if error <= EXPORT_TOLERANCE:
                scorer.from_cache = True
                if log:
                    log(f'loaded the exported scoring pass from {cached}')
                return scorer
            if log:
                log(f'the cached scoring pass {cached} is unusable ({reason}); exporting')
        with tempfile.TemporaryDirectory(prefix='vlm_nav_onnx_') as tmp:
            path = os.path.join(tmp, 'packed.onnx')
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    # TracerWarnings about shape checks the packed pass keeps fixed anyway
                    warnings.simplefilter('ignore')
                    torch.onnx.export(wrapper, args, path, dynamo=False, opset_version=17,
                                      input_names=names, output_names=['logits'],
                                      dynamic_axes=dynamic, do_constant_folding=True)
            except Exception as err:  # noqa: B902 - any exporter failure is a diagnostic
                raise ExportError(f'torch.onnx could not export the scoring pass: '
                                  f'{type(err).__name__}: {err}') from None
            scorer = session(path, quantized=False)
            try:
                error = scorer.check(inputs, expected)
            except Exception as err:  # noqa: B902
                raise ExportError(f'ONNX Runtime cannot run the exported scoring pass: '
                                  f'{type(err).__name__}: {str(err)[:300]}') from None
            if error > EXPORT_TOLERANCE:
                raise ExportError(f'the exported scoring pass differs from torch by '
                                  f'{error:.2g} in log-probability (> {EXPORT_TOLERANCE})')
            if log:
                log(f'exported the scoring pass to ONNX (log-prob difference {error:.1g})')
            if quantize:
                from onnxruntime.quantization import QuantType, quantize_dynamic
                qpath = os.path.join(tmp, 'packed_int8.onnx')
                root = logging.getLogger()
                level = root.level
                root.setLevel(logging.ERROR)    # its per-tensor chatter
                try:
                    quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
                except Exception as err:  # noqa: B902
                    raise ExportError(f'ONNX Runtime could not quantize the scoring pass: '
                                      f'{type(err).__name__}: {err}') from None
                finally:
                    root.setLevel(level)
                path = qpath
                scorer = session(path, quantized=True)
            if cached:
                _keep(path, cached, scorer.run(inputs) if quantize else None, log)
        return scorer

    def accepts(self, inputs: Dict[str, Any]) -> bool:
        """Whether the image tensors have the shapes the graph was exported with."""
        return all(k in inputs and tuple(inputs[k].shape) == shape
                   for k, shape in self.image_shapes.items())

    def run(self, inputs: Dict[str, Any]) -> np.ndarray:
        """Logits (1, kept, vocab) for packed-pass inputs (torch tensors or arrays)."""
        feeds = {}
        for name in list(TEXT_INPUTS) + self.image_keys:
            value = inputs[name]
            feeds[name] = value.numpy() if hasattr(value, 'numpy') else np.asarray(value)
        return self.session.run(['logits'], feeds)[0]

    def check(self, inputs: Dict[str, Any], expected: np.ndarray) -> float:
        """Largest log-probability difference between this graph and ``expected`` logits."""
        got = self.run(inputs)
        return float(np.abs(_log_softmax(got) - _log_softmax(expected)).max())


def _keep(path: str, cached: str, output: Optional[np.ndarray], log=None) -> None:
    """
    Copy an exported graph (and, for int8, its output on the export sample) into the cache.

    Whole or not at all: a concurrent start of the same model may write them too.
    """
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        partial = f'{cached}.{os.getpid()}.partial'
        if output is not None:
            with open(partial, 'wb') as out:
                np.save(out, output)
            os.replace(partial, cached + '.npy')
        shutil.copyfile(path, partial)
        os.replace(partial, cached)
    except OSError as err:                  # a read-only home: export each time
        if log:
            log(f'could not keep the exported scoring pass in {cached}: {err}')


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def sample_questions() -> List:
    """Return the navigator's questions: the export sample covers the run-time shapes."""
    return target_questions('red ball')


def runtime_label(scorer: Optional[OnnxScorer]) -> str:
    """Diagnostic label of the runtime that scores closed-set questions."""
    if scorer is None:
        return 'torch'
    return 'onnxruntime int8' if scorer.quantized else 'onnxruntime'
