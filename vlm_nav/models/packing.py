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
The packed sequence: one image's questions in one row of one forward pass.

A packed row is the shared prefix (role token, image tokens, the prompt's start), then one
block per question (the rest of its prompt; in training its answer too). Every block
keeps the positions it has in its own single-question prompt and attends causally to the
prefix and to itself only, so each question's logits are those of its own sequence while
the image and the prefix are computed once. HFBackend's packed scoring pass and the
embedded model's training (vlm_nav.training) build their rows with these functions.
No ROS imports; torch is imported by the mask alone.
"""

from typing import Any, List, Optional, Sequence, Tuple

PREFIX = 0      # segment id of the shared prefix; blocks are 1, 2, ...; padding is -1
PADDING = -1


def block_layout(prefix: int, lengths: Sequence[int]) -> Tuple[List[int], List[int]]:
    """
    Return (segment ids, position ids) of one packed row.

    ``prefix`` tokens of segment 0 at positions 0.., then block k (1, 2, ...) of
    ``lengths[k - 1]`` tokens, segment k, at positions prefix.., as in its own prompt.
    """
    segments, positions = [PREFIX] * prefix, list(range(prefix))
    for k, n in enumerate(lengths, 1):
        segments += [k] * n
        positions += range(prefix, prefix + n)
    return segments, positions


def eager_attention(config: Any) -> bool:
    """
    Tell whether the model's language model adds its attention mask to the scores.

    Eager attention does: its mask must be additive floats, not booleans.
    """
    return getattr(config.get_text_config(), '_attn_implementation', '') == 'eager'


def block_mask(segments, additive: bool = False, dtype: Optional[Any] = None):
    """
    Return the (B, 1, W, W) attention mask of packed rows from their (B, W) segment ids.

    ``segments`` is a torch tensor; -1 pads a row. Causal, and a block sees only the
    prefix and itself. A padding query sees the first key alone, so its softmax has no
    NaN. Boolean (True: attend) unless ``additive``: then 0 where allowed and the most
    negative value of ``dtype`` (default float32) elsewhere, for eager attention.
    """
    import torch
    width = segments.shape[1]
    real = segments >= 0
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    allowed = (causal[None] & real[:, None, :] & real[:, :, None]
               & ((segments[:, None, :] == PREFIX)
                  | (segments[:, None, :] == segments[:, :, None])))
    allowed[:, :, 0] |= ~real
    allowed = allowed[:, None]
    return to_additive(allowed, dtype) if additive else allowed


def to_additive(allowed, dtype: Optional[Any] = None):
    """Turn a boolean mask (True: attend) into 0 / the most negative value of ``dtype``."""
    import torch
    dtype = torch.float32 if dtype is None else dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill_(
        ~allowed, torch.finfo(dtype).min)


def open_image_blocks(allowed, is_image):
    """
    Let the tokens of each run of image tokens attend to each other both ways.

    ``allowed`` is a boolean (B, 1, W, W) mask, ``is_image`` (B, W). Gemma 3's own mask
    does this (every image is one bidirectional block); in a packed row the images are in
    the shared prefix, so the blocks and the question blocks never meet.
    """
    import torch
    previous = torch.nn.functional.pad(is_image, (1, 0))[:, :-1]
    group = torch.cumsum((is_image & ~previous).long(), dim=1)
    group = torch.where(is_image, group, torch.full_like(group, -1))
    same = (group[:, :, None] == group[:, None, :]) & is_image[:, :, None]
    return allowed | same[:, None]


def sliding_window(allowed, positions, window: int):
    """
    Restrict a boolean (B, 1, W, W) mask to keys less than ``window`` positions back.

    By position, not by index in the packed row, so a block sees what it sees alone.
    """
    back = positions[:, :, None] - positions[:, None, :]
    return allowed & (back < window)[:, None]
