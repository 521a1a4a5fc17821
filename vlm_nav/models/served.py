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
VLMBackend over an OpenAI-compatible chat-completions server. No ROS imports.

One GPU server (vLLM, SGLang, llama.cpp's server, ``transformers serve``) can answer a
whole fleet of robots. A robot selects it with its ``model`` parameter::

    openai://HOST:PORT/v1?model=NAME          (plain http)
    openai+https://HOST/v1?model=NAME         (https)
    http://HOST:PORT/v1?model=NAME            (the same as openai://)

Query options (all optional): ``model`` (the served model's id; default: the first one
``/v1/models`` lists), ``timeout`` (seconds per HTTP request, default 5), ``retries``
(retries of a failed request, with exponential backoff and jitter, default 1),
``api_key_env`` (the environment variable holding the API key, default
``VLM_NAV_API_KEY``; keys never go in the URL), ``image_format`` (``png``, lossless, the
default, or ``jpeg``), ``top_logprobs`` (default 20).

Images travel as data URLs. Closed-set questions are scored from the log-probabilities of
the first answer token (``logprobs``/``top_logprobs``, offered by vLLM, SGLang and
llama.cpp); a server that returns none (``transformers serve`` 5.24 ignores the field)
is scored by generating the answer and matching it to a choice, which gives the argmax
only (probabilities 0/1, or uniform when nothing matched). ``diagnostics()`` says which.
"""

import base64
from concurrent.futures import ThreadPoolExecutor
import io
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np
from PIL import Image as PILImage

from vlm_nav.models.base import Image, ModelLoadError, Question, ScoredAnswer, VLMBackend

SCHEMES = {'openai': 'http', 'openai+http': 'http', 'openai+https': 'https',
           'http': 'http', 'https': 'https'}
DEFAULT_API_KEY_ENV = 'VLM_NAV_API_KEY'
DEFAULT_TIMEOUT_S = 5.0
DEFAULT_RETRIES = 1
DEFAULT_TOP_LOGPROBS = 20           # vLLM's and OpenAI's upper limit
MATCH_TOKENS = 8                    # generated tokens to match a choice when no logprobs
_OPTIONS = ('model', 'timeout', 'retries', 'api_key_env', 'image_format', 'top_logprobs')

SCORING_LOGPROBS = 'logprobs'
SCORING_MATCH = 'generate-and-match'


class ServedError(RuntimeError):
    """A request to the model server failed; the message names the server and a fix."""


def is_served_spec(model: str) -> bool:
    """Tell whether a model string names a server rather than a hub id or folder."""
    scheme = model.strip().split('://', 1)[0].lower() if '://' in model else ''
    return scheme in SCHEMES


def parse_spec(spec: str) -> Tuple[str, Dict[str, str]]:
    """Return (base URL for the client, options) of a served spec; ValueError if malformed."""
    parts = urlsplit(spec.strip())
    scheme = SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"'{spec}': scheme must be one of {', '.join(sorted(SCHEMES))}")
    if not parts.hostname:
        raise ValueError(f"'{spec}': no host (e.g. openai://127.0.0.1:8000/v1?model=NAME)")
    try:
        parts.port  # noqa: B018 - parsing it is the check
    except ValueError as err:
        raise ValueError(f"'{spec}': {err}") from None
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - set(_OPTIONS))
    if unknown:
        raise ValueError(f"'{spec}': unknown option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(_OPTIONS)}")
    options = {k: v[-1] for k, v in query.items()}
    path = parts.path.rstrip('/') or '/v1'
    return urlunsplit((scheme, parts.netloc, path, '', '')), options


def encode_image(image: Image, fmt: str = 'png') -> str:
    """Return an HxWx3 uint8 RGB image as a data URL (lossless PNG: the server sees our pixels)."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 RGB image, got {array.shape} {array.dtype}')
    buffer = io.BytesIO()
    if fmt == 'jpeg':
        PILImage.fromarray(array, mode='RGB').save(buffer, format='JPEG', quality=90)
    else:
        PILImage.fromarray(array, mode='RGB').save(buffer, format='PNG')
    return f'data:image/{fmt};base64,' + base64.b64encode(buffer.getvalue()).decode('ascii')


def _norm(text: str) -> str:
    return ' '.join(text.strip().lower().split())


def choice_probs_from_top_logprobs(choices: Sequence[str],
                                   top: Sequence[Tuple[str, float]]) -> Optional[List[float]]:
    """
    Return per-choice probabilities from the first answer token's top log-probabilities.

    A token counts for every choice it begins (case and surrounding spaces ignored),
    its probability split evenly among them; a choice that no listed token begins gets
    at most the smallest listed probability (the rest of the mass is unknown). The
    result is renormalised over the choices. Exact for single-token choices; for
    choices that share their first token it can only split them evenly. None when no
    listed token begins any choice.
    """
    mass = np.zeros(len(choices))
    names = [_norm(c) for c in choices]
    probs = []
    for token, logprob in top:
        p = float(np.exp(logprob))
        probs.append(p)
        text = _norm(token)
        if not text:
            continue
        hits = [i for i, name in enumerate(names) if name.startswith(text)]
        for i in hits:
            mass[i] += p / len(hits)
    if not mass.any():
        return None
    missing = mass == 0
    if missing.any():
        rest = max(0.0, 1.0 - sum(probs))
        mass[missing] = min(min(probs), rest / int(missing.sum())) if probs else 0.0
    return (mass / mass.sum()).tolist()


def match_choice(choices: Sequence[str], reply: str) -> Optional[int]:
    """Index of the choice a generated reply gives (its start, else a whole word of it)."""
    text = _norm(reply).strip(' .,!?:;"\'')
    names = [_norm(c) for c in choices]
    best = None
    for i, name in enumerate(names):
        if text == name or text.startswith(name + ' ') or text.startswith(name):
            if best is None or len(name) > len(names[best]):
                best = i
    if best is not None:
        return best
    words = f' {text} '
    found = [i for i, name in enumerate(names) if f' {name} ' in words]
    return found[0] if len(found) == 1 else None


class ServedBackend(VLMBackend):
    """A VLM answered by an OpenAI-compatible server (see the module docstring)."""

    def __init__(self, spec: str, **_ignored: Any) -> None:
        """
        Parse the spec only; load() contacts the server.

        Keyword arguments meant for a local backend (device, dtype, ...) are ignored:
        the server decides those.
        """
        self.spec = spec.strip()
        try:
            self.base_url, options = parse_spec(self.spec)
            self.timeout_s = float(options.get('timeout', DEFAULT_TIMEOUT_S))
            self.retries = int(options.get('retries', DEFAULT_RETRIES))
            self.top_logprobs = int(options.get('top_logprobs', DEFAULT_TOP_LOGPROBS))
        except ValueError as err:
            raise ModelLoadError(f'served model: {err}') from None
        if self.timeout_s <= 0 or self.retries < 0 or not 1 <= self.top_logprobs <= 20:
            raise ModelLoadError(f"'{self.spec}': need timeout > 0, retries >= 0, "
                                 '1 <= top_logprobs <= 20')
        self.image_format = options.get('image_format', 'png').lower()
        if self.image_format not in ('png', 'jpeg'):
            raise ModelLoadError(f"'{self.spec}': image_format must be png or jpeg")
        self.api_key_env = options.get('api_key_env', DEFAULT_API_KEY_ENV)
        self.model = options.get('model', '')
        self.name = self.model or self.base_url
        self.client: Any = None
        self.scoring: Optional[str] = None      # learnt from the first scored answer
        self._lock = threading.Lock()
        self._counts = {'requests': 0, 'failed_requests': 0}
        self._last_error = ''
        self._pool: Optional[ThreadPoolExecutor] = None

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Connect and check the model is served; ModelLoadError with a fix otherwise."""
        import openai
        api_key = os.environ.get(self.api_key_env, '') or 'none'
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key, max_retries=self.retries,
            timeout=openai.Timeout(self.timeout_s, connect=min(self.timeout_s, 3.0)))
        try:
            served = [m.id for m in self.client.models.list()]
        except openai.AuthenticationError as err:
            raise ModelLoadError(
                f'model server {self.base_url} refused the API key ({err.status_code}); set '
                f'{self.api_key_env} to the key the server expects') from None
        except openai.APIConnectionError as err:
            raise ModelLoadError(self._unreachable(err)) from None
        except openai.APIStatusError as err:
            raise ModelLoadError(
                f'model server {self.base_url} answered /models with HTTP {err.status_code}: '
                f'{_short(err)}; is it an OpenAI-compatible server (path ending in /v1)?'
            ) from None
        if not served:
            raise ModelLoadError(f'model server {self.base_url} serves no model')
        if not self.model:
            self.model = served[0]
        elif self.model not in served:
            # transformers serve loads models on demand and lists only loaded ones; others
            # list exactly what they serve. Say so rather than refuse.
            self._last_error = (f"'{self.model}' not in /models ({', '.join(served)}); "
                                'relying on the server to load it on demand')
        self.name = self.model
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix='served')

    def _unreachable(self, err: Exception) -> str:
        import openai
        tries = f'tried {self.retries + 1} time(s)'
        if isinstance(err, openai.APITimeoutError):
            return (f'the model server at {self.base_url} did not answer within '
                    f'{self.timeout_s:g} s ({tries}). Fix: check the server is up and not '
                    'overloaded (fewer robots per server, a faster GPU), or raise timeout=')
        return (f'cannot reach the model server at {self.base_url} '
                f'({type(err).__name__}: {_cause(err)}; {tries}). Fix: start it (e.g. '
                '`transformers serve MODEL --host 0.0.0.0 --port 8000` or `vllm serve MODEL`) '
                'and check host, port and firewall')

    def _require_loaded(self) -> None:
        if self.client is None:
            raise RuntimeError(f'{self.name}: call load() first')

    # ------------------------------------------------------------------ requests

    def _chat(self, image_url: str, prompt: str, max_tokens: int, logprobs: bool):
        """One chat completion; ServedError naming the server on any failure."""
        import openai
        content = [{'type': 'image_url', 'image_url': {'url': image_url}},
                   {'type': 'text', 'text': prompt}]
        kwargs: Dict[str, Any] = {}
        if logprobs:
            kwargs = {'logprobs': True, 'top_logprobs': self.top_logprobs}
        with self._lock:
            self._counts['requests'] += 1
        try:
            return self.client.chat.completions.create(
                model=self.model, messages=[{'role': 'user', 'content': content}],
                max_tokens=max_tokens, temperature=0.0, **kwargs)
        except openai.APIConnectionError as err:
            message = self._unreachable(err)
        except openai.APIStatusError as err:
            message = (f'model server {self.base_url} answered HTTP {err.status_code}: '
                       f'{_short(err)}')
        with self._lock:
            self._counts['failed_requests'] += 1
            self._last_error = message
        raise ServedError(message)

    def score(self, image: Image, questions: Sequence[Question]) -> List[ScoredAnswer]:
        """Probabilities over each question's choices; questions are sent concurrently."""
        self._require_loaded()
        if not questions:
            return []
        for question, choices in questions:
            if not choices:
                raise ValueError(f"question '{question}' has no choices")
        url = encode_image(image, self.image_format)
        if self.scoring is None:
            # The first answer tells whether the server gives logprobs (one request).
            first = [self._score_one(url, questions[0])]
            rest = list(questions[1:])
        else:
            first, rest = [], list(questions)
        futures = [self._pool.submit(self._score_one, url, q) for q in rest]
        return first + [f.result() for f in futures]

    def _score_one(self, image_url: str, question: Question) -> ScoredAnswer:
        prompt, choices = question[0], list(question[1])
        scoring = self.scoring
        max_tokens = 1 if scoring == SCORING_LOGPROBS else MATCH_TOKENS
        reply = self._chat(image_url, prompt, max_tokens, logprobs=scoring != SCORING_MATCH)
        top = _first_token_top_logprobs(reply)
        if top is not None:
            self.scoring = SCORING_LOGPROBS
            probs = choice_probs_from_top_logprobs(choices, top)
            if probs is not None:
                return ScoredAnswer(choices, probs)
            return ScoredAnswer(choices, [1.0 / len(choices)] * len(choices))
        if scoring == SCORING_LOGPROBS:
            raise ServedError(f'model server {self.base_url} stopped returning logprobs')
        self.scoring = SCORING_MATCH
        index = match_choice(choices, _text(reply))
        if index is None:
            return ScoredAnswer(choices, [1.0 / len(choices)] * len(choices))
        return ScoredAnswer(choices, [float(i == index) for i in range(len(choices))])

    def generate(self, image: Image, prompt: str, max_new_tokens: int = 32,
                 between_steps: Optional[Callable[[], None]] = None) -> str:
        """Greedy free text (temperature 0), at most max_new_tokens."""
        self._require_loaded()
        if max_new_tokens <= 0:
            return ''
        reply = self._chat(encode_image(image, self.image_format), prompt,
                           int(max_new_tokens), logprobs=False)
        return _text(reply).strip()

    def diagnostics(self) -> Dict[str, str]:
        with self._lock:
            values = {'server': self.base_url, 'served_model': self.model,
                      'server_requests': str(self._counts['requests']),
                      'server_failed_requests': str(self._counts['failed_requests']),
                      'server_last_error': self._last_error}
        if self.scoring == SCORING_MATCH:
            values['scoring'] = ('generate-and-match: the server returns no logprobs, so '
                                 'probabilities are 0/1 (argmax only), not calibrated')
        else:
            values['scoring'] = self.scoring or 'not known yet (nothing scored)'
        return values


def _first_token_top_logprobs(reply) -> Optional[List[Tuple[str, float]]]:
    try:
        content = reply.choices[0].logprobs.content
        entries = content[0].top_logprobs or [content[0]]
    except (AttributeError, IndexError, TypeError):
        return None
    return [(e.token, float(e.logprob)) for e in entries]


def _text(reply) -> str:
    try:
        return reply.choices[0].message.content or ''
    except (AttributeError, IndexError):
        return ''


def _cause(err: Exception) -> str:
    cause = err.__cause__ or err.__context__
    return str(cause or err) or type(cause or err).__name__


def _short(err: Exception, limit: int = 200) -> str:
    text = str(getattr(err, 'message', '') or err)
    return text if len(text) <= limit else text[:limit] + '...'
