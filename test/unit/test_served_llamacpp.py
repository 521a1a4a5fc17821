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
The first-token logprobs path against a real server: llama.cpp's (llama-cpp-python).

The embedded model is converted to GGUF (text model + LLaVA image encoder) with llama.cpp's
own converters and served on 127.0.0.1; ServedBackend scores from its ``top_logprobs``.
Skipped unless the server's venv exists (bash scripts/setup_llamacpp_server.sh).

llama.cpp's LLaVA graph puts CLIP's class embedding after the patch embeddings (position
embeddings in that order) and keeps rows 1..N; transformers puts it first and drops it.
With that layout reproduced in the local model, the served probabilities match it within
LAYOUT_TOLERANCE; against the local model as it is, the argmax mostly agrees.
"""

from contextlib import contextmanager

import numpy as np
import pytest

from vlm_nav.bench.served import llamacpp_missing, llamacpp_server
from vlm_nav.bringup.profiles import node_parameters
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.hf_backend import HFBackend
from vlm_nav.models.served import SCORING_LOGPROBS, ServedBackend
from vlm_nav.perception import vocabulary
from vlm_nav.sim.dataset import sample_view
from vlm_nav.sim.episodes import make_episodes, model_observer, simulate_episode

pytestmark = pytest.mark.skipif(bool(llamacpp_missing()), reason=llamacpp_missing())

# Largest |served - local| probability of any choice, llama.cpp's image layout reproduced
# locally (measured: 0.0009 over 64 answers; float32 weights, the patch embedding in f16,
# tanh-approximated GELU).
LAYOUT_TOLERANCE = 0.01
# Against the local model as it is (measured: 59 of 64 argmax agree, mean 0.053).
MIN_ARGMAX_AGREEMENT = 0.85
MAX_MEAN_DIFFERENCE = 0.1
FOUND_SEED = 3_000_028            # a held-out episode whose target is the red ball


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp('llamacpp') / 'server.log'
    with llamacpp_server(str(EMBEDDED_MODEL_DIR), threads=1, log_path=str(log)) as spec:
        yield spec


@contextmanager
def class_embedding_last():
    """Make transformers' CLIP embed the image as llama.cpp's LLaVA graph does."""
    import torch
    from transformers.models.clip import modeling_clip

    def forward(self, pixel_values, interpolate_pos_encoding=False):
        patches = self.patch_embedding(pixel_values.to(self.patch_embedding.weight.dtype))
        patches = patches.flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(pixel_values.shape[0], 1, -1)
        return torch.cat([patches, cls], dim=1) + self.position_embedding(self.position_ids)
    original = modeling_clip.CLIPVisionEmbeddings.forward
    modeling_clip.CLIPVisionEmbeddings.forward = forward
    try:
        yield
    finally:
        modeling_clip.CLIPVisionEmbeddings.forward = original


def test_choice_probabilities_from_top_logprobs_match_the_local_model(server,
                                                                      one_torch_thread):
    views = [sample_view(seed, v)[0] for seed in (1, 2) for v in range(8)]
    questions = vocabulary.target_questions('red ball')
    served = ServedBackend(server + '&timeout=30')
    served.load()
    assert served.scoring == SCORING_LOGPROBS
    remote = [served.score(image, questions) for image in views]
    assert served.diagnostics()['server_failed_requests'] == '0'
    local = HFBackend(str(EMBEDDED_MODEL_DIR), runtime='torch')     # float32, no ONNX
    local.load()
    here = [local.score(image, questions) for image in views]
    with class_embedding_last():
        as_llamacpp = [local.score(image, questions) for image in views]

    def compare(reference):
        pairs = [(r, h) for rs, hs in zip(remote, reference) for r, h in zip(rs, hs)]
        for r, h in pairs:
            assert r.choices == h.choices and sum(r.probs) == pytest.approx(1.0)
        differences = [np.abs(np.subtract(r.probs, h.probs)).max() for r, h in pairs]
        agree = sum(r.best == h.best for r, h in pairs) / len(pairs)
        return max(differences), float(np.mean(differences)), agree

    largest, mean, agree = compare(as_llamacpp)
    print(f'llama.cpp layout: largest difference {largest:.4f}, mean {mean:.5f}, '
          f'argmax agree {agree:.2f}')
    assert largest <= LAYOUT_TOLERANCE and agree == 1.0
    largest, mean, agree = compare(here)
    print(f'as transformers runs it: largest {largest:.4f}, mean {mean:.4f}, agree {agree:.2f}')
    assert agree >= MIN_ARGMAX_AGREEMENT and mean <= MAX_MEAN_DIFFERENCE


def test_a_robot_finds_the_red_ball_through_the_server(server):
    episode = next(e for e in make_episodes(40) if e.seed == FOUND_SEED)
    assert episode.target == 'red ball'
    served = ServedBackend(server + '&timeout=30')
    served.load()
    row = simulate_episode(episode, model_observer(served), latency_s=0.2,
                           navigator=node_parameters('navigator_node'))
    print({k: row[k] for k in ('outcome', 'success', 'collisions', 'time_s', 'decisions')})
    assert row['success'] and row['collisions'] == 0, row['outcome']
