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
Convert a small LLaVA folder (the embedded model) to GGUF for llama.cpp's server.

Writes OUT/text-f32.gguf (the Llama text model, by llama.cpp's convert_hf_to_gguf.py) and
OUT/mmproj-model-f32.gguf (the CLIP vision tower and the MLP projector, by llama.cpp's
tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py, the LLaVA-1.5 image encoder
format). Run with the robot's venv (torch, transformers)::

    python scripts/make_llamacpp_gguf.py --llama-cpp ~/.cache/vlm_nav/servers/llamacpp/llama.cpp \
        --model vlm_nav/embedded_model --out /tmp/gguf

Adjustments for this model: its byte-level BPE tokenizer is new to the converter, whose
table of pre-tokenizers knows it by a hash, so it is declared GPT-2's (the same regex);
its vocabulary is read from tokenizer.json directly (the converter would try
SentencePiece first); and the GGUF says whether to add a BOS token as tokenizer_config.json
does (this one adds none). The vision features come from the last CLIP layer
(``vision_feature_layer`` -1), which the image converter keeps when told so.
"""

import argparse
import json
from pathlib import Path
import runpy
import sys


def run_converter(llama_cpp: Path, script: Path, args) -> None:
    """Run one of llama.cpp's converter scripts in this process, with its gguf-py."""
    for path in (str(llama_cpp / 'gguf-py'), str(llama_cpp)):
        if path not in sys.path:
            sys.path.insert(0, path)
    argv = sys.argv
    sys.argv = [str(script), *args]
    try:
        runpy.run_path(str(script), run_name='__main__')
    finally:
        sys.argv = argv


def convert_text(llama_cpp: Path, model: Path, out: Path) -> Path:
    """Write the text model's GGUF with llama.cpp's converter."""
    target = out / 'text-f32.gguf'
    sys.path.insert(0, str(llama_cpp))
    from conversion import base, llama
    base.TextModel.get_vocab_base_pre = lambda self, tokenizer: 'gpt-2'

    def set_vocab(self):
        self._set_vocab_gpt2()
        # Its tokenizer adds no BOS (the chat template starts the prompt).
        self.gguf_writer.add_add_bos_token(add_bos)
    add_bos = bool(json.loads((model / 'tokenizer_config.json').read_text()).get(
        'add_bos_token', False))
    llama.LlamaModel.set_vocab = set_vocab
    run_converter(llama_cpp, llama_cpp / 'convert_hf_to_gguf.py',
                  [str(model), '--outfile', str(target), '--outtype', 'f32'])
    return target


def _tower_under_vision_model() -> None:
    """
    Make CLIPVisionModel.from_pretrained give the tower under ``vision_model``.

    The image converter expects that layout; transformers 5 puts the embeddings and the
    encoder on CLIPVisionModel itself.
    """
    import torch
    from transformers import CLIPVisionModel
    load = CLIPVisionModel.from_pretrained

    def wrapped(cls, folder, *args, **kwargs):
        wrapper = torch.nn.Module()
        wrapper.vision_model = load(folder, *args, **kwargs)
        return wrapper
    CLIPVisionModel.from_pretrained = classmethod(wrapped)


def convert_vision(llama_cpp: Path, model: Path, out: Path) -> Path:
    """Write the image encoder's GGUF (CLIP tower + projector) with llama.cpp's converter."""
    import torch
    from transformers import LlavaForConditionalGeneration
    llava = LlavaForConditionalGeneration.from_pretrained(model, dtype=torch.float32)
    config = llava.config
    clip_dir = out / 'clip_vision'
    llava.model.vision_tower.save_pretrained(clip_dir)      # a CLIPVisionModel
    saved = json.loads((clip_dir / 'config.json').read_text())
    saved['vision_feature_layer'] = config.vision_feature_layer
    (clip_dir / 'config.json').write_text(json.dumps(saved, indent=1))
    projector = {f'multi_modal_projector.{k}': v.detach().clone() for k, v in
                 llava.model.multi_modal_projector.state_dict().items()}
    torch.save(projector, clip_dir / 'llava.projector')
    processor = json.loads((model / 'processor_config.json').read_text())['image_processor']
    mean = [str(x) for x in processor['image_mean']]
    std = [str(x) for x in processor['image_std']]
    script = llama_cpp / 'tools' / 'mtmd' / 'legacy-models' / 'convert_image_encoder_to_gguf.py'
    _tower_under_vision_model()
    run_converter(llama_cpp, script, [
        '-m', str(clip_dir), '--llava-projector', str(clip_dir / 'llava.projector'),
        '--output-dir', str(out), '--clip-model-is-vision', '--use-f32',
        '--projector-type', 'mlp', '--image-mean', *mean, '--image-std', *std])
    return out / 'mmproj-model-f32.gguf'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--llama-cpp', required=True, type=Path,
                        help="llama.cpp's source folder (the llama-cpp-python sdist's vendor/)")
    parser.add_argument('--model', required=True, type=Path, help='the LLaVA folder')
    parser.add_argument('--out', required=True, type=Path, help='folder for the GGUF files')
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    vision = convert_vision(args.llama_cpp, args.model, args.out)
    text = convert_text(args.llama_cpp, args.model, args.out)
    print(f'{text}\n{vision}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
