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
A model server that misbehaves on demand: a tiny stdlib HTTP server on 127.0.0.1.

``FakeServer`` answers ``GET /v1/models`` and ``POST /v1/chat/completions`` the way its
``mode`` says, and a test switches the mode while robots use it:

- ``good``: valid completions; with ``logprobs`` asked, first-token ``top_logprobs``;
- ``proxy``: forwards every request to ``upstream`` (a real server) and its answer back;
- ``html``, ``not_json`` (sent as application/json), ``foo`` (``{"foo": 1}``),
  ``no_choices``, ``no_text``, ``no_logprobs``, ``unmatched`` (a valid completion
  naming none of the choices), ``http_500``: HTTP answers that are not usable;
- ``uniform``: valid completions whose first-token probabilities are all the same;
- ``hang`` (never answers), ``drop`` (closes the connection without an answer),
  ``slow`` (waits ``delay_s`` before the first byte of a ``good``/``proxy`` answer).

``/v1/models`` stays a valid list in every mode but ``models_html``, ``hang`` and
``drop``: a server whose model list is fine and whose chat is broken.
"""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import math
import socket
import sys
import threading
import time
from typing import Optional
import urllib.error
import urllib.request

MODEL = 'fake-vlm'
MODES = ('good', 'proxy', 'html', 'not_json', 'foo', 'no_choices', 'no_text', 'no_logprobs',
         'unmatched', 'uniform', 'http_500', 'hang', 'drop', 'slow', 'models_html')
HTML = b'<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body></body></html>'
# First-token probabilities the good mode gives: every choice of the navigator's questions.
TOP = (('yes', 0.55), ('center', 0.2), ('far', 0.1), ('no', 0.05), ('left', 0.03),
       ('right', 0.03), ('near', 0.02))


def good_answer(prompt: str) -> str:
    """Return the good mode's text answer to one of the navigator's questions."""
    text = prompt.lower()
    if text.startswith('where'):
        return 'center'
    if 'near or far' in text:
        return 'far'
    return 'yes'


def completion(text: Optional[str], logprobs: bool, top=TOP) -> dict:
    """Return a chat completion answering text (with first-token top_logprobs if asked)."""
    message = {'role': 'assistant'}
    if text is not None:
        message['content'] = text
    choice = {'index': 0, 'message': message, 'finish_reason': 'stop'}
    if logprobs:
        top = [{'token': t, 'logprob': math.log(p), 'bytes': list(t.encode())} for t, p in top]
        choice['logprobs'] = {'content': [dict(top[0], top_logprobs=top)]}
    return {'id': 'chatcmpl-fake', 'object': 'chat.completion', 'created': int(time.time()),
            'model': MODEL, 'choices': [choice],
            'usage': {'prompt_tokens': 1, 'completion_tokens': 1, 'total_tokens': 2}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server: '_Server'

    def log_message(self, *args) -> None:     # quiet: the tests print what matters
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get('Content-Length') or 0)
        return self.rfile.read(length) if length else b''

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), 'application/json')

    def _misbehave(self, mode: str) -> bool:
        """Hang or drop the connection; True when the request was handled so."""
        fake = self.server.fake
        if mode == 'hang':
            fake.closing.wait(fake.hang_s)
            self.close_connection = True
            return True
        if mode == 'drop':
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return True
        return False

    def do_GET(self) -> None:  # noqa: N802 - the name BaseHTTPRequestHandler calls
        fake = self.server.fake
        fake.count(self.path)
        mode = fake.mode
        if self._misbehave(mode):
            return
        if mode == 'proxy':
            self._proxy(None)
        elif mode == 'models_html':
            self._send(200, HTML, 'text/html')
        elif self.path.rstrip('/').endswith('/models'):
            self._json({'object': 'list', 'data': [
                {'id': MODEL, 'object': 'model', 'created': 0, 'owned_by': 'test'}]})
        else:
            self._send(404, b'not found', 'text/plain')

    def do_POST(self) -> None:  # noqa: N802 - the name BaseHTTPRequestHandler calls
        fake = self.server.fake
        body = self._body()
        fake.count(self.path)
        mode = fake.mode
        if self._misbehave(mode):
            return
        if mode == 'slow':
            fake.closing.wait(fake.delay_s)
            mode = 'proxy' if fake.upstream else 'good'
        if mode == 'proxy':
            self._proxy(body)
            return
        try:
            request = json.loads(body)
            prompt = next(part['text'] for part in request['messages'][-1]['content']
                          if part.get('type') == 'text')
        except (ValueError, KeyError, StopIteration, TypeError):
            self._json({'error': {'message': 'bad request'}}, 400)
            return
        logprobs = bool(request.get('logprobs'))
        if mode in ('good', 'models_html'):
            self._json(completion(good_answer(prompt), logprobs))
        elif mode == 'uniform':
            self._json(completion(good_answer(prompt), logprobs,
                                  [(t, 1.0 / len(TOP)) for t, _ in TOP]))
        elif mode == 'no_logprobs':
            self._json(completion(good_answer(prompt), False))
        elif mode == 'unmatched':
            reply = completion('purple', False)
            if logprobs:
                top = [{'token': 'purple', 'logprob': -0.1, 'bytes': []}]
                reply['choices'][0]['logprobs'] = {'content': [dict(top[0], top_logprobs=top)]}
            self._json(reply)
        elif mode == 'no_text':
            self._json(completion(None, False))
        elif mode == 'no_choices':
            self._json({'id': 'chatcmpl-fake', 'object': 'chat.completion', 'model': MODEL})
        elif mode == 'foo':
            self._json({'foo': 1})
        elif mode == 'not_json':
            self._send(200, b'upstream said: everything is fine', 'application/json')
        elif mode == 'html':
            self._send(200, HTML, 'text/html; charset=utf-8')
        elif mode == 'http_500':
            self._json({'error': {'message': 'CUDA out of memory'}}, 500)
        else:
            self._send(500, f'unknown mode {mode}'.encode(), 'text/plain')

    def _proxy(self, body: Optional[bytes]) -> None:
        upstream = self.server.fake.upstream
        request = urllib.request.Request(upstream.rstrip('/') + self.path[len('/v1'):],
                                         data=body, method='POST' if body is not None else 'GET')
        request.add_header('Content-Type', 'application/json')
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                self._send(reply.status, reply.read(),
                           reply.headers.get('Content-Type', 'application/json'))
        except urllib.error.HTTPError as err:
            self._send(err.code, err.read(), err.headers.get('Content-Type', 'text/plain'))
        except OSError as err:
            self._send(502, f'proxy: {err}'.encode(), 'text/plain')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: 'FakeServer'

    def handle_error(self, request, client_address) -> None:
        """Stay quiet about clients that left (timed out) before the answer was written."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeServer:
    """An OpenAI-like server on 127.0.0.1 whose behaviour is ``mode`` (see the module doc)."""

    def __init__(self, mode: str = 'good', port: int = 0, upstream: str = '',
                 delay_s: float = 3.0, hang_s: float = 60.0):
        """
        Bind 127.0.0.1:port (0 = any free port) and serve on a thread.

        upstream: the base URL (``http://127.0.0.1:PORT/v1``) that the proxy mode forwards
        to. delay_s: the slow mode's wait before the first byte; hang_s: the longest a
        hanging request is held (the server's close ends it at once).
        """
        self.mode, self.upstream, self.delay_s, self.hang_s = mode, upstream, delay_s, hang_s
        self.closing = threading.Event()
        self.requests = {}
        self._lock = threading.Lock()
        self._server = _Server(('127.0.0.1', port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={'poll_interval': 0.05}, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f'http://127.0.0.1:{self.port}/v1'

    def spec(self, **options) -> str:
        """Return the served-model spec naming this server, with query options."""
        query = '&'.join(f'{k}={v}' for k, v in dict({'model': MODEL}, **options).items())
        return f'openai://127.0.0.1:{self.port}/v1?{query}'

    def count(self, path: str) -> None:
        with self._lock:
            self.requests[path] = self.requests.get(path, 0) + 1

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)

    def __enter__(self) -> 'FakeServer':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
