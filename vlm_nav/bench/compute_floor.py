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
The arithmetic floor of one prefill over the image on this CPU, against a speed target.

    python -m vlm_nav.bench.compute_floor --model llava-phi3-mini --threads 2 \
        --out bench/results/model_cpu/llava_phi3_mini/compute_floor

Counts the multiply-adds of one bare prefill (image + the visibility question,
``logits_to_keep=1``) from the published architecture's config, built on torch's meta
device (no weights, no memory), then measures what this CPU multiplies per second on the
model's own layer shapes, on --threads torch threads: float32 ``torch.nn.functional.linear``
and torch's dynamic int8 ``Linear`` (what ``dtype: int8`` runs). FLOPs / throughput is
the fastest a prefill can be at that precision on this machine, whatever the runtime
does around the matrix products (attention score products are counted too, at the
float32 rate). Writes summary.json and a bar chart (floor.png) next to the measured
times in --measured (the results.csv of ``vlm-nav bench model``) and the target.
"""

import argparse
import csv
import json
import math
import os
from pathlib import Path
import platform
from statistics import median
import sys
import tempfile
import time

from PIL import Image as PILImage

from vlm_nav.bench.model import shape_config, shape_processor, TARGET
from vlm_nav.models import registry
from vlm_nav.perception import vocabulary
from vlm_nav.testing import tiny

REPO = Path(__file__).resolve().parents[2]


def count_flops(shape: str) -> dict:
    """Count the FLOPs of one prefill (2 per multiply-add), by part, and the tokens."""
    import torch
    tokenizer = tiny.build_tokenizer()
    config = shape_config(shape, tokenizer)
    processor = shape_processor(shape, tokenizer)
    family = registry.family_for(config)
    prompt = family.prompt_template.format(question=vocabulary.visible_question(TARGET))
    enc = processor(images=[PILImage.new('RGB', (640, 480))], text=[prompt],
                    return_tensors='pt')
    seq = int(enc['input_ids'].shape[1])
    with torch.device('meta'):
        model = registry.model_class(config)._from_config(config)
    vision_cfg, text_cfg = config.vision_config, config.text_config
    patches = (vision_cfg.image_size // vision_cfg.patch_size) ** 2 + 1      # + class token

    def linear_params(module):
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, torch.nn.Linear))
    # vision_feature_layer -2: the last encoder layer's output is never used, but
    # transformers runs every layer; count what runs.
    flops = {
        'vision_linear': 2 * linear_params(model.model.vision_tower) * patches,
        'vision_attention': 4 * vision_cfg.num_hidden_layers * patches ** 2 *
        vision_cfg.hidden_size,
        'projector': 2 * linear_params(model.model.multi_modal_projector) *
        config.image_seq_length,
        'text_linear': 2 * linear_params(model.model.language_model) * seq,
        # causal attention: QK^T and AV over the lower triangle, all heads
        'text_attention': 4 * text_cfg.num_hidden_layers * seq * (seq + 1) // 2 *
        text_cfg.hidden_size,
        'lm_head': 2 * model.lm_head.weight.numel(),                     # one position
    }
    attention = flops['vision_attention'] + flops['text_attention']
    return {'sequence_tokens': seq, 'image_tokens': config.image_seq_length,
            'vision_patches': patches, 'flops': flops, 'attention_flops': attention,
            'linear_flops': sum(flops.values()) - attention,
            'text_hidden': text_cfg.hidden_size, 'text_intermediate': text_cfg.intermediate_size}


def _best_rate(fn, flops: float, repeats: int) -> float:
    fn()                                                            # warm-up
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return flops / best / 1e9


def _onnx_matmul(weight, int8: bool, threads: int, folder: str):
    """
    Open an ONNX Runtime session of x @ weight.T.

    int8: ONNX Runtime's dynamic quantization, as `runtime: onnxruntime_int8` applies it to
    the scoring graph.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    import onnxruntime
    rows_in, cols = weight.shape[1], weight.shape[0]
    graph = helper.make_graph(
        [helper.make_node('MatMul', ['x', 'w'], ['y'])], 'linear',
        [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['rows', rows_in])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['rows', cols])],
        [numpy_helper.from_array(weight.T.contiguous().numpy(), 'w')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 9
    path = os.path.join(folder, 'linear.onnx')
    onnx.save(model, path)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        quantize_dynamic(path, path + '.int8', weight_type=QuantType.QInt8)
        path += '.int8'
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def measure(rows: int, k: int, n: int, repeats: int, threads: int) -> dict:
    """
    Measure the best-of-`repeats` GFLOP/s of a rows x k @ k x n product.

    Torch float32, torch's dynamic int8 Linear (`dtype: int8`), ONNX Runtime float32 and
    int8.
    """
    import torch
    x = torch.randn(rows, k)
    weight = torch.randn(n, k) * 0.02
    dense = torch.nn.Linear(k, n, bias=False)
    dense.weight.data.copy_(weight)
    int8 = torch.ao.quantization.quantize_dynamic(
        torch.nn.Sequential(dense), {torch.nn.Linear}, dtype=torch.qint8)
    flops = 2.0 * rows * k * n
    out = {}
    with torch.inference_mode():
        out['torch:float32'] = _best_rate(lambda: torch.nn.functional.linear(x, weight),
                                          flops, repeats)
        out['torch:int8'] = _best_rate(lambda: int8(x), flops, repeats)
    feed = {'x': x.numpy()}
    with tempfile.TemporaryDirectory() as folder:
        for name, quantized in (('onnxruntime:float32', False), ('onnxruntime:int8', True)):
            session = _onnx_matmul(weight, quantized, threads, folder)
            out[name] = _best_rate(lambda: session.run(None, feed), flops, repeats)
    return out


def bench_precision(runtime: str) -> str:
    """
    Return the `vlm-nav bench model` precision label of a runtime:precision measured here.

    'torch:int8' -> 'int8', 'onnxruntime:int8' -> 'onnxruntime:int8'.
    """
    return runtime.split(':', 1)[1] if runtime.startswith('torch:') else runtime


def measured_times(path: str) -> dict:
    """Return p50 ms per (precision, operation) from a `vlm-nav bench model` results.csv."""
    runs = {}
    if path and os.path.isfile(path):
        with open(path) as f:
            for row in csv.DictReader(f):
                runs.setdefault((row['precision'], row['operation']), []).append(
                    float(row['ms']))
    return {f'{p}/{op}': median(v) for (p, op), v in runs.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--model', default='llava-phi3-mini')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--measured', default='',
                        help='results.csv of vlm-nav bench model for the same model')
    parser.add_argument('--target-ratio', type=float, default=8.0,
                        help='frame-to-decision speed-up asked over the original design')
    parser.add_argument('--out', required=True)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)

    print(f'[floor] counting the FLOPs of one {args.model} prefill', flush=True)
    counted = count_flops(args.model)
    total = sum(counted['flops'].values())
    print(f'[floor] {counted["sequence_tokens"]} tokens ({counted["image_tokens"]} image): '
          f'{total / 1e12:.2f} TFLOP', flush=True)
    seq, hidden, inter = (counted['sequence_tokens'], counted['text_hidden'],
                          counted['text_intermediate'])
    # the language model's two big shapes: attention projections and the MLP
    shapes = {'mlp (seq x hidden -> intermediate)': (seq, hidden, inter),
              'attention projection (seq x hidden -> hidden)': (seq, hidden, hidden)}
    rates = {}
    for name, (m, k, n) in shapes.items():
        print(f'[floor] measuring {name}: {m}x{k} @ {k}x{n} on {args.threads} threads',
              flush=True)
        rates[name] = measure(m, k, n, args.repeats, args.threads)
        print('[floor]   ' + ', '.join(f'{r} {v:.1f} GFLOP/s' for r, v in rates[name].items()),
              flush=True)
    # The floor of each runtime:precision at its best rate on these shapes; attention's
    # score products stay float32 in every configuration (the runtime's float32 rate).
    best = {r: max(v[r] for v in rates.values()) for r in next(iter(rates.values()))}
    floors = {r: counted['linear_flops'] / (best[r] * 1e9) +
              counted['attention_flops'] / (best[r.split(':')[0] + ':float32'] * 1e9)
              for r in best}
    measured = measured_times(args.measured)
    summary = {'model': args.model, 'threads': args.threads, 'machine': platform.processor()
               or platform.machine(), 'torch': torch.__version__, **counted,
               'total_flops': total, 'gflops_per_s': rates, 'best_gflops_per_s': best,
               'prefill_floor_s': floors, 'measured_ms': measured}
    original = measured.get('float32/search_generate_parse')
    if original:
        budget = original / 1000.0 / args.target_ratio
        summary['target'] = {
            'ratio': args.target_ratio, 'original_search_s': original / 1000.0,
            'decision_budget_s': budget,
            'best_ratio_at_floor': {p: original / 1000.0 / floors[p] for p in floors}}
        print(f'[floor] original design (float32 generate-50 + parse) {original / 1000:.1f} s; '
              f'{args.target_ratio:g}x asks for a decision in {budget:.1f} s', flush=True)
    for p, floor in floors.items():
        line = f'[floor] {p}: prefill floor {floor:.1f} s'
        precision = bench_precision(p)
        if f'{precision}/prefill' in measured:
            line += f' (measured {measured[f"{precision}/prefill"] / 1000:.1f} s)'
        if original:
            line += f'; best possible ratio {original / 1000 / floor:.1f}x'
        print(line, flush=True)
    with open(os.path.join(args.out, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    plot(args.out, summary)
    print(f'[floor] wrote {args.out}/summary.json, floor.png', flush=True)
    return 0


def plot(out: str, summary: dict) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = list(summary['prefill_floor_s'])
    floor = [summary['prefill_floor_s'][r] for r in labels]
    measured = [summary['measured_ms'].get(f'{bench_precision(r)}/decision', math.nan)
                / 1000.0 for r in labels]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], floor, 0.4,
           label='arithmetic floor (FLOPs / measured GEMM rate)')
    ax.bar([x + 0.2 for x in xs], measured, 0.4, label='measured decision')
    if 'target' in summary:
        ax.axhline(summary['target']['decision_budget_s'], color='red', linestyle='--',
                   label=f'{summary["target"]["ratio"]:g}x target')
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel('seconds per decision')
    ax.set_title(f'{summary["model"]}, {summary["threads"]} threads: '
                 f'{summary["total_flops"] / 1e12:.1f} TFLOP per prefill')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'floor.png'), dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
