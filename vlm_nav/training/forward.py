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
The embedded model's forward passes as training runs them, for training and validation.

Normalised pixels, image features, the unpacked last hidden states, and the packed loss
(one row per image: the prefix once, then each question + answer block;
vlm_nav.models.packing).
"""

from typing import Dict

import torch
import torch.nn.functional as F

from vlm_nav.models.packing import block_mask, eager_attention


def pixel_values(images: torch.Tensor, processor) -> torch.Tensor:
    """uint8 (B, S, S, 3) -> normalised (B, 3, S, S) float, as the image processor does."""
    mean = torch.tensor(processor.image_processor.image_mean, device=images.device)
    std = torch.tensor(processor.image_processor.image_std, device=images.device)
    x = images.permute(0, 3, 1, 2).float() * processor.image_processor.rescale_factor
    return (x - mean[:, None, None]) / std[:, None, None]


def image_features(model, pixels: torch.Tensor) -> torch.Tensor:
    """(B, num_image_tokens, text_hidden): what LlavaModel.get_image_features computes."""
    cfg = model.config
    out = model.model.vision_tower(pixels, output_hidden_states=True)
    hidden = out.hidden_states[cfg.vision_feature_layer]
    if cfg.vision_feature_select_strategy == 'default':
        hidden = hidden[:, 1:]
    return model.model.multi_modal_projector(hidden)


def hidden_states(model, pixels: torch.Tensor, image_index: torch.Tensor,
                  input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Unpacked: last LM hidden states, one sequence per question."""
    feats = image_features(model, pixels)[image_index]
    embeds = model.get_input_embeddings()(input_ids)
    mask = (input_ids == model.config.image_token_id).unsqueeze(-1)
    embeds = embeds.masked_scatter(mask, feats.to(embeds.dtype))
    out = model.model.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                     use_cache=False)
    return out.last_hidden_state


def packed_loss(model, pixels: torch.Tensor, batch: Dict[str, torch.Tensor],
                num_questions: int) -> torch.Tensor:
    """Answer-token cross-entropy of a packed batch; mean per question, then over questions."""
    ids = batch['input_ids']
    embeds = model.get_input_embeddings()(ids)
    mask = (ids == model.config.image_token_id).unsqueeze(-1)
    embeds = embeds.masked_scatter(mask, image_features(model, pixels).to(embeds.dtype))
    attention = block_mask(batch['seg'], eager_attention(model.config), torch.float32)
    out = model.model.language_model(
        inputs_embeds=embeds, attention_mask=attention,
        position_ids=batch['position_ids'], use_cache=False)
    hidden = out.last_hidden_state.flatten(0, 1)[batch['target_pos']]
    tok_loss = F.cross_entropy(model.lm_head(hidden).float(), batch['target_ids'],
                               reduction='none')
    q = batch['target_q']
    sums = torch.zeros(num_questions, device=ids.device).index_add_(0, q, tok_loss)
    counts = torch.zeros(num_questions, device=ids.device).index_add_(
        0, q, torch.ones_like(tok_loss))
    return (sums / counts).mean()
