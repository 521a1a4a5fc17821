"""Closed-set scoring through ONNX Runtime: the packed scoring pass exported once.

HFBackend answers one image's closed-set questions in ONE forward pass (the shared
image + prompt prefix, then every question's tail; see ``HFBackend._forward_packed``).
For a small model on a CPU that pass is mostly framework overhead and small matrix
products, which ONNX Runtime runs with less of both; with ``int8`` its dynamic
quantization (int8 MatMul weights, activations quantized on the fly) cuts the products.
Generation (descriptions, free-text Ask) stays in torch: it needs the KV cache loop.

The graph is exported with torch.onnx's TorchScript exporter from the loaded model on a
sample of the real inputs (the width of the packed sequence and the number of kept
positions are dynamic axes), checked against torch on that sample, and held in memory:
nothing is written next to the model.
"""

import logging
import os
import tempfile
import warnings
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

# Fixed leading inputs of the packed pass; the image tensors the processor gives follow.
TEXT_INPUTS = ('input_ids', 'attention_mask', 'position_ids', 'keep_index')
# Export check: largest |log-prob difference| accepted between the graph and torch (fp32).
EXPORT_TOLERANCE = 1e-3


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
        """:param image_shapes: the image inputs in the graph's order, with the shapes
            they were exported with (fixed: only the text side has dynamic axes)."""
        self.session = session
        self.image_shapes = dict(image_shapes)
        self.image_keys = list(image_shapes)
        self.quantized = quantized

    @classmethod
    def export(cls, model, inputs: Dict[str, Any], quantize: bool, threads: int,
               log=None) -> 'OnnxScorer':
        """Export ``model``'s packed pass on sample ``inputs`` (the tensors
        ``HFBackend._packed_inputs`` builds), check it, optionally quantize it to int8."""
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

        with tempfile.TemporaryDirectory(prefix='vlm_nav_onnx_') as tmp:
            path = os.path.join(tmp, 'packed.onnx')
            try:
                with torch.no_grad(), warnings.catch_warnings():
                    # TracerWarnings about shape checks the packed pass keeps fixed anyway
                    warnings.simplefilter('ignore')
                    expected = wrapper(*args).float().numpy()
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
                scorer = session(qpath, quantized=True)
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


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def sample_questions() -> List:
    """The navigator's questions: the export sample covers the shapes used at run time."""
    from vlm_nav.perception import target_questions
    return target_questions('red ball')


def runtime_label(scorer: Optional[OnnxScorer]) -> str:
    """Diagnostic label of the runtime that scores closed-set questions."""
    if scorer is None:
        return 'torch'
    return 'onnxruntime int8' if scorer.quantized else 'onnxruntime'
