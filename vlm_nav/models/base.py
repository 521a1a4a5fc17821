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

"""The one small interface every model backend implements. No ROS imports."""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple

import numpy as np

# An image is an HxWx3 uint8 RGB numpy array everywhere in model code.
Image = np.ndarray
Question = Tuple[str, Sequence[str]]


class ModelLoadError(RuntimeError):
    """The model could not be loaded; the message says why and what to do."""


class UnsupportedOperation(ValueError):
    """The model cannot do what was asked (e.g. CLIP asked to describe); says what it can."""


@dataclass
class ScoredAnswer:
    choices: List[str]
    probs: List[float]          # calibrated: softmax over the choices' log-likelihoods

    @property
    def best(self) -> str:
        return self.choices[int(np.argmax(self.probs))]


class VLMBackend(ABC):
    """
    Describe, ask and score on one image.

    Implementations must be thread-compatible (called from one worker thread at a time).
    """

    name: str = 'unknown'
    # What this backend offers (registry.DESCRIBE / ASK / SCORE / OBSERVE / MATCH); a
    # backend that can't do all the generative ones narrows this.
    operations: FrozenSet[str] = frozenset({'describe', 'ask', 'score', 'observe'})

    def require(self, operation: str) -> None:
        """Raise UnsupportedOperation, naming what the model can do, if it can't do this."""
        if operation not in self.operations:
            offered = ', '.join(sorted(self.operations)) or 'nothing'
            raise UnsupportedOperation(
                f"model '{self.name}' cannot {operation}: it supports {offered}")

    @abstractmethod
    def load(self) -> None:
        """Load weights; raise ModelLoadError with a clear message on failure."""

    @abstractmethod
    def score(self, image: Image, questions: Sequence[Question]) -> List[ScoredAnswer]:
        """Answer several closed-set questions about the same image (image encoded once)."""

    def score_batch(self, requests: Sequence[Tuple[Image, Sequence[Question]]]
                    ) -> List[List[ScoredAnswer]]:
        """
        Score several images (e.g. several cameras), each with its questions.

        Backends that can run them in one forward pass override this.
        """
        return [self.score(image, questions) for image, questions in requests]

    @abstractmethod
    def generate(self, image: Image, prompt: str, max_new_tokens: int,
                 between_steps: Optional[Callable[[], None]] = None) -> str:
        """
        Return a free-text answer, greedy, at most max_new_tokens.

        between_steps: called on the generating thread between decoding steps, where the
        caller may run other work on the same model (the vlm_node answers waiting
        closed-set requests there, so a decision never waits for a whole description).
        Backends that don't decode step by step here (a server) never call it.
        """

    def generate_batch(self, images: Sequence[Image], prompt: str, max_new_tokens: int,
                       between_steps: Optional[Callable[[], None]] = None) -> List[str]:
        """
        Generate for several images and one prompt (the describer's views of a frame).

        Backends that can decode them together override this.
        """
        return [self.generate(image, prompt, max_new_tokens, between_steps=between_steps)
                for image in images]

    def diagnostics(self) -> Dict[str, str]:
        """Return backend facts worth publishing on /diagnostics, e.g. a server's scoring mode."""
        return {}
