"""Model backends behind one interface (base.VLMBackend). No ROS imports.

Heavy imports (torch, transformers) happen only when a backend is built.
"""

from typing import Any

from vlm_nav.models.base import ModelLoadError, VLMBackend

__all__ = ['load_backend', 'ModelLoadError', 'VLMBackend']


def load_backend(model: str, backend: str = 'hf', **kwargs: Any) -> VLMBackend:
    """Build a backend and load it; raises ModelLoadError with a clear message.

    :param model: hub id or local folder (for 'hf'); a server spec such as
        'openai://HOST:PORT/v1?model=NAME' always selects 'served'.
    :param backend: 'hf' (transformers) or 'served' (an OpenAI-compatible server, see
        models/served.py); kwargs go to its constructor (device, dtype, max_new_tokens,
        allow_download; a served backend ignores them).
    """
    from vlm_nav.models.served import is_served_spec
    if backend == 'served' or is_served_spec(model):
        from vlm_nav.models.served import ServedBackend
        instance = ServedBackend(model, **kwargs)
    elif backend == 'hf':
        # The registry family of the model's config picks the class (generative or CLIP-like).
        from vlm_nav.models.hf_backend import open_backend
        return open_backend(model, **kwargs)
    else:
        raise ModelLoadError(f"unknown backend '{backend}'; available: 'hf', 'served'")
    instance.load()
    return instance
