"""Model backends behind one interface (base.VLMBackend). No ROS imports.

Heavy imports (torch, transformers) happen only when a backend is built.
"""

from typing import Any

from vlm_nav.models.base import ModelLoadError, VLMBackend

__all__ = ['load_backend', 'ModelLoadError', 'VLMBackend']


def load_backend(model: str, backend: str = 'hf', **kwargs: Any) -> VLMBackend:
    """Build a backend and load it; raises ModelLoadError with a clear message.

    :param model: hub id or local folder (for 'hf').
    :param backend: 'hf' (transformers); kwargs go to its constructor
        (device, dtype, max_new_tokens, allow_download).
    """
    if backend == 'hf':
        # The registry family of the model's config picks the class (generative or CLIP-like).
        from vlm_nav.models.hf_backend import open_backend
        return open_backend(model, **kwargs)
    raise ModelLoadError(f"unknown backend '{backend}'; available: 'hf'")
