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
Model backends behind one interface (base.VLMBackend), and the one way to open them.

``make_backend`` picks the backend class for a model parameter (the embedded model, a hub
id or folder of a registry family, or a server spec); ``load_backend`` also loads it.
No ROS imports; torch and transformers are imported only when a backend loads.
"""

from typing import Any

from vlm_nav.models import registry
from vlm_nav.models.base import ModelLoadError, VLMBackend
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.hf_backend import ContrastiveBackend, HFBackend
from vlm_nav.models.served import is_served_spec, ServedBackend

__all__ = ['load_backend', 'make_backend', 'ModelLoadError', 'resolve_model', 'VLMBackend']

EMBEDDED = ('', 'embedded')
BACKENDS = ('hf', 'served')
_FAMILY_BACKENDS = {registry.GENERATIVE: HFBackend, registry.CONTRASTIVE: ContrastiveBackend}


def resolve_model(model: str) -> str:
    """'' or 'embedded' -> the model folder shipped in the package; anything else as given."""
    if model.strip() in EMBEDDED:
        return str(EMBEDDED_MODEL_DIR)
    return model.strip()


def make_backend(model: str, backend: str = 'hf', **kwargs: Any) -> VLMBackend:
    """
    Return the backend for ``model``, not yet loaded; raise ModelLoadError with a clear message.

    :param model: '' or 'embedded' (the shipped model), a hub id or local folder (for
        'hf'; its config's registry family picks a generative or CLIP-like backend), or a
        server spec such as 'openai://HOST:PORT/v1?model=NAME', which always selects
        'served'.
    :param backend: 'hf' (transformers) or 'served' (an OpenAI-compatible server, see
        models/served.py); kwargs go to its constructor (device, dtype, runtime,
        max_new_tokens, allow_download; a served backend ignores them).
    """
    source = resolve_model(model)
    if backend == 'served' or is_served_spec(source):
        return ServedBackend(source, **kwargs)
    if backend != 'hf':
        raise ModelLoadError(f"unknown backend '{backend}'; available: "
                             + ', '.join(repr(b) for b in BACKENDS))
    family = HFBackend(source, **kwargs).read_family()
    return _FAMILY_BACKENDS[family.backend](source, **kwargs)


def load_backend(model: str, backend: str = 'hf', **kwargs: Any) -> VLMBackend:
    """make_backend, then load()."""
    instance = make_backend(model, backend, **kwargs)
    instance.load()
    return instance
