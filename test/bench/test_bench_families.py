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
`vlm-nav bench model`'s family shapes: the published sizes with their checkpoints' images.

Configs and processors only (no weights are built): the shapes the benchmark times are
vlm_nav.models.fit's, and a 640x480 frame takes the image tokens the docs' table counts.
"""

import numpy as np
import pytest

from vlm_nav.bench import model as bench
from vlm_nav.models import fit, registry
from vlm_nav.perception import vocabulary


@pytest.mark.parametrize('shape', bench.FAMILY_SHAPES)
def test_family_shape_is_the_published_size_with_its_image_tokens(shape):
    config, processor = bench.family_shape(shape)
    spec = fit.BY_NAME[shape]
    family = registry.family_for(config)
    assert family.name != 'generic', family
    n = registry.parameter_count(config)
    row = fit.shape_fit(spec)
    if fit.buildable(spec):
        assert n == row.parameters
    else:       # FastVLM without timm: its tower stands in (104 M against 125 M)
        assert n == pytest.approx(row.parameters, rel=0.05)
    frame = np.zeros((480, 640, 3), np.uint8)
    text = (processor.apply_chat_template(
        [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text':
                                      vocabulary.visible_question(bench.TARGET)}]}],
        add_generation_prompt=True))
    enc = processor(images=[frame], text=[text], return_tensors='pt')
    token = getattr(config, 'image_token_id', None) or config.image_token_index
    assert enc['input_ids'][0].tolist().count(token) == row.image_tokens
    if spec.family in ('Qwen2.5-VL', 'Qwen3-VL', 'FastVLM'):
        # After the newline that opens the answer, each answer is one token, as in Qwen2's
        # vocabulary: the decision scores four rows, not one per piece of a word.
        for word in bench.CHOICE_WORDS:
            assert len(processor.tokenizer(word, add_special_tokens=False)['input_ids']) == 1


def test_frames_scale_to_a_camera_size():
    frames = bench.held_out_frames(2, '640x480')
    assert frames.shape == (2, 480, 640, 3) and frames.dtype == np.uint8
    assert bench.held_out_frames(1).shape == (1, 96, 96, 3)
