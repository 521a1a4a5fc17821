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
``/v1/models`` lists), ``timeout`` (seconds per HTTP request, default 2), ``retries``
(retries of a request that could not connect, timed out or got HTTP 408/409/429/5xx,
after 0.5 s, 1 s, ... less up to 25 % jitter; default 1),
``api_key_env`` (the environment variable holding the API key, default
``VLM_NAV_API_KEY``; keys never go in the URL), ``image_format`` (``png``, lossless, the
default, or ``jpeg``), ``top_logprobs`` (default 20).

Images travel as data URLs. Closed-set questions are scored from the log-probabilities of
the first answer token (``logprobs``/``top_logprobs``, offered by vLLM, SGLang and
llama.cpp); a server that returns none (``transformers serve`` 5.24 ignores the field)
is scored by generating the answer and matching it to a choice, which gives the argmax
only (probabilities 0/1). ``load()`` asks one question to learn which; ``diagnostics()``
says it.

The server is not trusted: an answer that is not a chat completion (another content type,
not JSON, no ``choices``, no text, logprobs gone after the server gave them) or that names
none of the choices is a failed request (``ServedError``, counted by kind in
``diagnostics()``), never an answer. ``health()`` is the last failure until a request
succeeds again.
"""

import base64
from concurrent.futures import ThreadPoolExecutor
import io
import json
import math
import os
from random import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit, urlunsplit

import numpy as np
from PIL import Image as PILImage

from vlm_nav.models.base import Image, ModelLoadError, Question, ScoredAnswer, VLMBackend
from vlm_nav.perception import vocabulary

SCHEMES = {'openai': 'http', 'openai+http': 'http', 'openai+https': 'https',
           'http': 'http', 'https': 'https'}
DEFAULT_API_KEY_ENV = 'VLM_NAV_API_KEY'
DEFAULT_TIMEOUT_S = 2.0
DEFAULT_RETRIES = 1
BACKOFF_S = 0.5                     # wait before the first retry, doubling each retry
MAX_BACKOFF_S = 8.0
DEFAULT_TOP_LOGPROBS = 20           # vLLM's and OpenAI's upper limit
MATCH_TOKENS = 8                    # generated tokens to match a choice when no logprobs
_OPTIONS = ('model', 'timeout', 'retries', 'api_key_env', 'image_format', 'top_logprobs')

SCORING_LOGPROBS = 'logprobs'
SCORING_MATCH = 'generate-and-match'
# What a failed request failed of: no connection, no answer in time, the connection closed
# without an answer, an HTTP error status, an answer that is not a completion, no logprobs
# where the server gave them, an answer that names none of the choices.
FAILURE_KINDS = ('unreachable', 'timeout', 'dropped', 'http_error', 'not_completion',
                 'no_logprobs', 'no_match')


class ServedError(RuntimeError):
    """
    A request to the model server failed; the message names the server and a fix.

    ``kind`` is one of FAILURE_KINDS: what went wrong, counted per kind.
    """

    def __init__(self, message: str, kind: str = 'not_completion'):
        super().__init__(message)
        self.kind = kind


class InvalidReply(ValueError):
    """An HTTP answer that is not what the endpoint returns; the message says what it lacks."""


def request_budget_s(timeout_s: float, retries: int) -> float:
    """Return the longest one request may take: every try's timeout and the waits between."""
    waits = sum(min(BACKOFF_S * 2 ** i, MAX_BACKOFF_S) for i in range(retries))
    return timeout_s * (retries + 1) + waits


def first_bytes(body: bytes, limit: int = 120) -> str:
    """Return the start of a body as one quoted line (what a message shows of a reply)."""
    text = ' '.join(body[:limit].decode('utf-8', 'replace').split())
    return repr(text + ('...' if len(body) > limit else ''))


def _json_body(content_type: str, body: bytes, what: str) -> Any:
    if 'json' not in content_type.lower():
        raise InvalidReply(f'content type {content_type or "(none)"}, not JSON; {what} are JSON')
    try:
        return json.loads(body)
    except ValueError as err:
        raise InvalidReply(f'sent as JSON but not JSON ({err})') from None


def parse_model_list(content_type: str, body: bytes) -> List[str]:
    """Return the model ids of a ``/models`` answer; InvalidReply if it is not a model list."""
    value = _json_body(content_type, body, 'model lists')
    data = value.get('data') if isinstance(value, dict) else None
    if not isinstance(data, list) or not all(
            isinstance(m, dict) and isinstance(m.get('id'), str) for m in data):
        raise InvalidReply('no "data" list of models with an "id" each')
    return [m['id'] for m in data]


def parse_completion(content_type: str, body: bytes, logprobs: bool = True
                     ) -> Tuple[str, Optional[List[Tuple[str, float]]]]:
    """
    Return (text, first-token top log-probabilities or None) of a chat completion.

    InvalidReply when the answer is not a chat completion: not JSON, no ``choices``, no
    message text, or (when logprobs were asked for) ``logprobs`` not of the OpenAI shape.
    """
    value = _json_body(content_type, body, 'chat completions')
    choices = value.get('choices') if isinstance(value, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidReply('no "choices"')
    message = choices[0].get('message')
    text = message.get('content') if isinstance(message, dict) else None
    if not isinstance(text, str):
        raise InvalidReply('no message text (choices[0].message.content)')
    given = choices[0].get('logprobs')
    if not logprobs or given is None:
        return text, None
    try:
        first = given['content'][0]
        entries = first.get('top_logprobs') or [first]
        top = [(e['token'], float(e['logprob'])) for e in entries]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise InvalidReply('"logprobs" without content[0].top_logprobs of token/logprob'
                           ) from None
    if not top or not all(isinstance(t, str) and math.isfinite(p) and p <= 1e-6
                          for t, p in top):
        raise InvalidReply('"logprobs" with no tokens, or a log-probability that is not a '
                           'finite number <= 0')
    return text, top


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
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)) or \
                not 0 <= self.retries <= 10 or not 1 <= self.top_logprobs <= 20:
            raise ModelLoadError(f"'{self.spec}': need timeout > 0, 0 <= retries <= 10, "
                                 '1 <= top_logprobs <= 20')
        self.image_format = options.get('image_format', 'png').lower()
        if self.image_format not in ('png', 'jpeg'):
            raise ModelLoadError(f"'{self.spec}': image_format must be png or jpeg")
        self.api_key_env = options.get('api_key_env', DEFAULT_API_KEY_ENV)
        self.model = options.get('model', '')
        self.name = self.model or self.base_url
        self.budget_s = request_budget_s(self.timeout_s, self.retries)
        self.client: Any = None
        self.scoring: Optional[str] = None      # learnt from the answer to load()'s probe
        self._lock = threading.Lock()
        self._counts = dict(dict.fromkeys(FAILURE_KINDS, 0), requests=0, failed_requests=0)
        self._last_error = ''                   # while requests fail; '' once one succeeds
        self._failing = 0                       # requests failed since the last success
        self._note = ''
        self._pool: Optional[ThreadPoolExecutor] = None

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """
        Check the server lists models and answers one question; learn how it scores.

        ModelLoadError with the server's URL, what came back and a fix otherwise.
        """
        import openai
        api_key = os.environ.get(self.api_key_env, '') or 'none'
        # Retries are ours (_send): bounded waits, whatever Retry-After a server sends.
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key, max_retries=0,
            timeout=openai.Timeout(self.timeout_s, connect=min(self.timeout_s, 3.0)))
        try:
            raw = self._send('GET /models', self.client.models.with_raw_response.list)
            served = parse_model_list(raw.headers.get('content-type', ''), raw.content)
        except ServedError as err:
            raise ModelLoadError(str(err)) from None
        except InvalidReply as err:
            raise ModelLoadError(
                f'model server {self.base_url} answered GET /models with HTTP 200 '
                f"{raw.headers.get('content-type') or 'without a content type'} that is not "
                f'an OpenAI model list ({err}): {first_bytes(raw.content)}. Fix: point the '
                'spec at the OpenAI-compatible API (the path ends in /v1; not a web page or '
                'a proxy login)') from None
        if not served:
            raise ModelLoadError(f'model server {self.base_url} serves no model. Fix: start '
                                 'it with the model to serve')
        if not self.model:
            self.model = served[0]
        elif self.model not in served:
            # transformers serve loads models on demand and lists only loaded ones; others
            # list exactly what they serve. Say so rather than refuse.
            self._note = (f"'{self.model}' not in /models ({', '.join(served)}); relying on "
                          'the server to load it on demand')
        self.name = self.model
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix='served')
        try:
            self._probe()
        except ServedError as err:
            self._pool.shutdown(wait=False)
            raise ModelLoadError(str(err)) from None

    def _probe(self) -> None:
        """Ask one closed-set question about a grey frame: the chat endpoint must answer."""
        image = encode_image(np.full((32, 32, 3), 128, dtype=np.uint8), self.image_format)
        _, top = self._chat(image, vocabulary.PATH_QUESTION, 1, logprobs=True)
        self.scoring = SCORING_LOGPROBS if top is not None else SCORING_MATCH
        self._recovered()

    def _require_loaded(self) -> None:
        if self.client is None:
            raise RuntimeError(f'{self.name}: call load() first')

    # ------------------------------------------------------------------ requests

    def _send(self, what: str, call: Callable[[], Any]) -> Any:
        """
        Return call()'s raw HTTP response, trying retries more times where that can help.

        Connection failures, timeouts and HTTP 408/409/429/5xx are tried again after 0.5 s,
        1 s, ... (less up to 25 % jitter); ServedError naming the server and the kind of
        failure once the tries are spent. The whole takes at most budget_s.
        """
        import openai
        for attempt in range(self.retries + 1):
            retry = attempt < self.retries
            try:
                return call()
            except openai.APITimeoutError:
                kind = 'timeout'
                message = (f'the model server at {self.base_url} did not answer {what} within '
                           f'{self.timeout_s:g} s ({self._tries()}). Fix: check the server is '
                           'up and not overloaded (fewer robots per server, a faster GPU), or '
                           'raise timeout= (keeping timeout x (retries + 1) under the '
                           "vlm_node's inference_timeout_s)")
            except openai.APIConnectionError as err:
                cause = err.__cause__ or err.__context__
                if type(cause).__name__ in ('ConnectError', 'ConnectTimeout'):
                    kind = 'unreachable'
                    message = self._unreachable(err)
                else:
                    kind = 'dropped'
                    message = (f'the model server at {self.base_url} closed the connection '
                               f'without answering {what} ({type(cause).__name__}: '
                               f'{_cause(err)}; {self._tries()}). Fix: read the server log '
                               '(a crash, an out-of-memory kill, a proxy timeout)')
            except openai.APIStatusError as err:
                code = err.status_code
                retry = retry and (code in (408, 409, 429) or code >= 500)
                kind = 'http_error'
                if code in (401, 403):
                    fix = (f'set {self.api_key_env} to the key the server expects '
                           '(api_key_env= names another variable)')
                elif code == 404:
                    fix = ('check the model name (model=; GET /v1/models lists them) and that '
                           'the path ends in /v1')
                else:
                    fix = 'read the server log'
                message = (f'model server {self.base_url} answered {what} with HTTP {code}: '
                           f'{first_bytes(err.response.content)}. Fix: {fix}')
            if not retry:
                raise self._failed(kind, message)
            time.sleep(min(BACKOFF_S * 2 ** attempt, MAX_BACKOFF_S) * (1 - 0.25 * random()))
        raise AssertionError('unreachable')

    def _tries(self) -> str:
        return f'tried {self.retries + 1} time(s)'

    def _unreachable(self, err: Exception) -> str:
        return (f'cannot reach the model server at {self.base_url} '
                f'({type(err).__name__}: {_cause(err)}; {self._tries()}). Fix: start it (e.g. '
                '`transformers serve MODEL --host 0.0.0.0 --port 8000` or `vllm serve MODEL`) '
                'and check host, port and firewall')

    def _failed(self, kind: str, message: str) -> ServedError:
        """Count a failed request of this kind; return the error to raise."""
        with self._lock:
            self._counts['failed_requests'] += 1
            self._counts[kind] += 1
            self._failing += 1
            self._last_error = message
        return ServedError(message, kind)

    def _recovered(self) -> None:
        """Record that an operation succeeded: the server is healthy again."""
        with self._lock:
            self._failing = 0
            self._last_error = ''

    def _chat(self, image_url: str, prompt: str, max_tokens: int, logprobs: bool
              ) -> Tuple[str, Optional[List[Tuple[str, float]]]]:
        """
        Return (text, first-token top log-probabilities or None) of one chat completion.

        ServedError naming the server, what came back and a fix on any failure,
        including an answer that is not a chat completion.
        """
        content = [{'type': 'image_url', 'image_url': {'url': image_url}},
                   {'type': 'text', 'text': prompt}]
        kwargs: Dict[str, Any] = {}
        if logprobs:
            kwargs = {'logprobs': True, 'top_logprobs': self.top_logprobs}
        with self._lock:
            self._counts['requests'] += 1
        raw = self._send('POST /chat/completions', lambda: (
            self.client.chat.completions.with_raw_response.create(
                model=self.model, messages=[{'role': 'user', 'content': content}],
                max_tokens=max_tokens, temperature=0.0, **kwargs)))
        content_type = raw.headers.get('content-type', '')
        try:
            return parse_completion(content_type, raw.content, logprobs)
        except InvalidReply as err:
            raise self._failed('not_completion', (
                f'model server {self.base_url} answered POST /chat/completions with HTTP '
                f'{raw.status_code} {content_type or "without a content type"} that is not a '
                f'chat completion ({err}): {first_bytes(raw.content)}. Fix: check the spec '
                'names an OpenAI-compatible server (vLLM, SGLang, llama.cpp, transformers '
                'serve; the path ends in /v1), not a web page or proxy, and read its log'
            )) from None

    def score(self, image: Image, questions: Sequence[Question]) -> List[ScoredAnswer]:
        """Probabilities over each question's choices; questions are sent concurrently."""
        self._require_loaded()
        if not questions:
            return []
        for question, choices in questions:
            if not choices:
                raise ValueError(f"question '{question}' has no choices")
        url = encode_image(image, self.image_format)
        futures = [self._pool.submit(self._score_one, url, q) for q in questions]
        answers = [f.result() for f in futures]
        self._recovered()
        return answers

    def _score_one(self, image_url: str, question: Question) -> ScoredAnswer:
        prompt, choices = question[0], list(question[1])
        if self.scoring == SCORING_LOGPROBS:
            text, top = self._chat(image_url, prompt, 1, logprobs=True)
            if top is None:
                raise self._failed('no_logprobs', (
                    f'model server {self.base_url} answered without the logprobs it returned '
                    'when the node connected (asked for: first-token top_logprobs). Fix: '
                    'check which server now answers at that URL and with which options'))
            probs = choice_probs_from_top_logprobs(choices, top)
            reply = '|'.join(t for t, _ in top[:5])
        else:
            text, _ = self._chat(image_url, prompt, MATCH_TOKENS, logprobs=False)
            index = match_choice(choices, text)
            probs = None if index is None else [float(i == index) for i in range(len(choices))]
            reply = text
        if probs is None:
            raise self._failed('no_match', (
                f'model server {self.base_url} answered {prompt!r} with {reply[:80]!r}, none '
                f"of {', '.join(choices)}; the answer is not used. Fix: serve a "
                'vision-language model that follows instructions, with its chat template'))
        return ScoredAnswer(choices, probs)

    def generate(self, image: Image, prompt: str, max_new_tokens: int = 32,
                 between_steps: Optional[Callable[[], None]] = None) -> str:
        """Greedy free text (temperature 0), at most max_new_tokens."""
        self._require_loaded()
        if max_new_tokens <= 0:
            return ''
        text, _ = self._chat(encode_image(image, self.image_format), prompt,
                             int(max_new_tokens), logprobs=False)
        self._recovered()
        return text.strip()

    def health(self) -> str:
        """Return '' while requests succeed, else the last failure (since the last success)."""
        with self._lock:
            return self._last_error

    def diagnostics(self) -> Dict[str, str]:
        with self._lock:
            values = {'server': self.base_url, 'served_model': self.model,
                      'server_state': (f'failing ({self._failing} request(s) since the last '
                                       'success)' if self._last_error else 'ok'),
                      'server_requests': str(self._counts['requests']),
                      'server_failed_requests': str(self._counts['failed_requests']),
                      'server_last_error': self._last_error,
                      'server_request_budget_s': f'{self.budget_s:g}'}
            values.update({f'server_failed_{kind}': str(self._counts[kind])
                           for kind in FAILURE_KINDS})
        if self._note:
            values['server_note'] = self._note
        if self.scoring == SCORING_MATCH:
            values['scoring'] = ('generate-and-match: the server returns no logprobs, so '
                                 'probabilities are 0/1 (argmax only), not calibrated')
        else:
            values['scoring'] = self.scoring or 'not known yet (not loaded)'
        return values


def _cause(err: Exception) -> str:
    cause = err.__cause__ or err.__context__
    return str(cause or err) or type(cause or err).__name__
