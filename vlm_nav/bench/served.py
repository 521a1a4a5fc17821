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
`vlm-nav bench served`: many robots sharing one model server.

N simulated robots (threads, each with its own client and connection, as separate robots
would have) send Observe-style decisions (the navigator's four closed-set questions about
a simulator frame) to one OpenAI-compatible server for a fixed time, for each N in
--robots. Records per-robot latency (p50/p95) and the fleet's throughput; writes
results.csv, summary.json and latency.png. Without --server it starts a server on the
given model folder on a free loopback port for the run: `transformers serve` (--kind
transformers, the default) or llama.cpp's server (--kind llamacpp: llama-cpp-python in its
own venv, made by scripts/setup_llamacpp_server.sh, on the model converted to GGUF by
scripts/make_llamacpp_gguf.py; it returns first-token logprobs).
"""

import argparse
from contextlib import contextmanager
import csv
import hashlib
import json
import os
from pathlib import Path
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple
import urllib.request

import numpy as np

from vlm_nav.models import resolve_model
from vlm_nav.models.hf_backend import HFBackend
from vlm_nav.models.served import ServedBackend
from vlm_nav.perception import vocabulary

DEFAULT_OUT = 'bench/results/served_cpu'
TARGET = 'red ball'
KINDS = ('transformers', 'llamacpp')
REPO = Path(__file__).resolve().parents[2]
LLAMACPP_ALIAS = 'vlm'
# The model's chat template in the form llama-cpp-python's LLaVA handler renders (the image
# as its URL, which the handler replaces by the image's embeddings): the embedded model's
# <|user|><image>\n{question}<|assistant|>, text lowercased as its tokenizer does.
LLAMACPP_TEMPLATE = (
    "{% for message in messages %}{% if message.role == 'user' %}<|user|>"
    '{% if message.content is string %}{{ message.content | lower }}{% else %}'
    "{% for c in message.content %}{% if c.type == 'image_url' %}"
    '{{ c.image_url.url if c.image_url is mapping else c.image_url }}\n'
    '{% endif %}{% endfor %}'
    "{% for c in message.content %}{% if c.type == 'text' %}{{ c.text | lower }}{% endif %}"
    '{% endfor %}{% endif %}'
    "{% elif message.role == 'assistant' %}<|assistant|>{{ message.content }}</s>{% endif %}"
    '{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}')
# Run by the server venv's python: llama-cpp-python's server with the LLaVA handler given
# the model's template and no system message of its own.
_LLAMACPP_LAUNCHER = """
import sys
from llama_cpp import llama_chat_format
llama_chat_format.Llava15ChatHandler.DEFAULT_SYSTEM_MESSAGE = None
llama_chat_format.Llava15ChatHandler.CHAT_FORMAT = sys.argv.pop(1)
from llama_cpp.server.__main__ import main
main()
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@contextmanager
def local_server(model_dir: str, port: Optional[int] = None, threads: int = 1,
                 log_path: Optional[str] = None, start_timeout_s: float = 120.0,
                 extra_args: Sequence[str] = ()) -> Iterator[str]:
    """
    Run `transformers serve MODEL_DIR` on 127.0.0.1; yield its served-model spec.

    The server process is stopped (SIGTERM, then SIGKILL) on exit. RuntimeError with the
    server's log tail if it does not answer /health within start_timeout_s.
    """
    port = port or free_port()
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               HF_HUB_OFFLINE='1', TRANSFORMERS_NO_ADVISORY_WARNINGS='1')
    command = [sys.executable, '-c', 'from transformers.cli.transformers import main; main()',
               'serve', str(model_dir), '--host', '127.0.0.1', '--port', str(port),
               '--device', 'cpu', '--log-level', 'warning', *extra_args]
    with _running('transformers serve', command, env, f'http://127.0.0.1:{port}/health',
                  log_path, start_timeout_s):
        yield f'openai://127.0.0.1:{port}/v1?model={Path(model_dir).resolve()}'


def llamacpp_home() -> Path:
    """Return where the llama.cpp server lives ($VLM_NAV_SERVERS/llamacpp)."""
    servers = os.environ.get('VLM_NAV_SERVERS', '~/.cache/vlm_nav/servers')
    return Path(servers).expanduser() / 'llamacpp'


def llamacpp_missing() -> str:
    """Return why the llama.cpp server cannot run here, or '' when it can."""
    home = llamacpp_home()
    if not (home / 'venv' / 'bin' / 'python').exists():
        return (f'no llama.cpp server venv in {home}: run bash '
                'scripts/setup_llamacpp_server.sh (builds llama-cpp-python[server])')
    if not (home / 'llama.cpp' / 'convert_hf_to_gguf.py').exists():
        return f'no llama.cpp converter in {home}/llama.cpp: run the setup script again'
    if not (REPO / 'scripts' / 'make_llamacpp_gguf.py').exists():
        return 'scripts/make_llamacpp_gguf.py not found (a source checkout is needed)'
    return ''


def llamacpp_gguf(model_dir: str) -> Tuple[Path, Path]:
    """
    Return (text model, image encoder) GGUF files of a LLaVA folder, converted once.

    They are kept under the server's folder, keyed by the weights' and config's hash.
    """
    folder = Path(model_dir).resolve()
    digest = hashlib.sha256()
    for name in ('config.json', 'model.safetensors', 'tokenizer.json'):
        digest.update((folder / name).read_bytes())
    out = llamacpp_home() / 'models' / f'{folder.name}-{digest.hexdigest()[:12]}'
    text, vision = out / 'text-f32.gguf', out / 'mmproj-model-f32.gguf'
    if not (text.exists() and vision.exists()):
        run = subprocess.run(
            [sys.executable, str(REPO / 'scripts' / 'make_llamacpp_gguf.py'), '--llama-cpp',
             str(llamacpp_home() / 'llama.cpp'), '--model', str(folder), '--out', str(out)],
            capture_output=True, text=True)
        if run.returncode != 0 or not (text.exists() and vision.exists()):
            raise RuntimeError(f'converting {folder} to GGUF failed:\n{run.stderr[-2000:]}')
    return text, vision


@contextmanager
def llamacpp_server(model_dir: str, port: Optional[int] = None, threads: int = 1,
                    log_path: Optional[str] = None,
                    start_timeout_s: float = 120.0) -> Iterator[str]:
    """
    Run llama.cpp's server (llama-cpp-python) on a LLaVA folder on 127.0.0.1; yield its spec.

    The folder is converted to GGUF first (once). RuntimeError saying what is missing
    (llamacpp_missing) or with the server's log tail if it does not start.
    """
    missing = llamacpp_missing()
    if missing:
        raise RuntimeError(missing)
    text, vision = llamacpp_gguf(model_dir)
    port = port or free_port()
    command = [str(llamacpp_home() / 'venv' / 'bin' / 'python'), '-c', _LLAMACPP_LAUNCHER,
               LLAMACPP_TEMPLATE, '--model', str(text), '--clip_model_path', str(vision),
               '--chat_format', 'llava-1-5', '--model_alias', LLAMACPP_ALIAS,
               '--n_ctx', '1024', '--n_threads', str(threads), '--logits_all', 'true',
               '--host', '127.0.0.1', '--port', str(port)]
    with _running('llama.cpp server', command, dict(os.environ),
                  f'http://127.0.0.1:{port}/v1/models', log_path, start_timeout_s):
        yield f'openai://127.0.0.1:{port}/v1?model={LLAMACPP_ALIAS}'


@contextmanager
def _running(what: str, command: Sequence[str], env: Dict[str, str], ready_url: str,
             log_path: Optional[str], start_timeout_s: float) -> Iterator[None]:
    """Run a server process until ready_url answers 200; stop it on exit."""
    log = open(log_path, 'w') if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f'{what} exited with {process.returncode}'
                                   + _tail(log_path))
            try:
                with urllib.request.urlopen(ready_url, timeout=1.0) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f'{what} did not answer {ready_url} in '
                                   f'{start_timeout_s:.0f} s' + _tail(log_path))
            time.sleep(0.25)
        yield
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if log is not subprocess.DEVNULL:
            log.close()


def _tail(log_path: Optional[str], chars: int = 2000) -> str:
    if not log_path or not os.path.exists(log_path):
        return ''
    return '\n--- server log ---\n' + Path(log_path).read_text()[-chars:]


def frames(count: int = 16, layout_seed: int = 3) -> List[np.ndarray]:
    """Render the simulator views (96 px, the embedded model's size) the robots cycle through."""
    from vlm_nav.sim.dataset import sample_view     # pybullet: `vlm-nav` loads without it
    return [sample_view(layout_seed, view)[0] for view in range(count)]


def _robot(spec: str, images: List[np.ndarray], offset: int, stop: threading.Event,
           done: List, errors: List[str], start: threading.Barrier,
           scoring: List[str]) -> None:
    """One robot: its own client; decisions back to back until stop; (t_done, latency)."""
    backend = ServedBackend(spec)
    questions = vocabulary.target_questions(TARGET)
    try:
        backend.load()
        backend.score(images[offset % len(images)], questions)     # warm-up
        scoring.append(backend.scoring)
    except Exception as error:  # noqa: B902 - reported, the fleet still starts
        errors.append(str(error))
    start.wait()
    i = offset
    while not stop.is_set() and backend.scoring is not None:
        t0 = time.monotonic()
        try:
            backend.score(images[i % len(images)], questions)
        except Exception as error:  # noqa: B902 - count it, keep the robot going
            errors.append(str(error))
            time.sleep(0.1)
            continue
        t1 = time.monotonic()
        done.append((t1, t1 - t0))
        i += 1


def _stats_ms(latencies_s: Sequence[float]) -> Dict[str, float]:
    ms = np.asarray(latencies_s, dtype=float) * 1e3
    if not ms.size:
        return {'p50_ms': float('nan'), 'p95_ms': float('nan'), 'mean_ms': float('nan')}
    return {'p50_ms': float(np.percentile(ms, 50)), 'p95_ms': float(np.percentile(ms, 95)),
            'mean_ms': float(ms.mean())}


def run_fleet(spec: str, robots: int, duration_s: float,
              images: List[np.ndarray]) -> Dict[str, object]:
    """
    Run N robots against one server for duration_s (after all are warm).

    Counts the decisions finished inside the window; per-robot and fleet p50/p95.
    """
    done: List[List] = [[] for _ in range(robots)]
    errors: List[List[str]] = [[] for _ in range(robots)]
    scoring: List[str] = []
    barrier = threading.Barrier(robots + 1)
    stop = threading.Event()
    workers = [threading.Thread(target=_robot, daemon=True,
                                args=(spec, images, r * 5, stop, done[r], errors[r], barrier,
                                      scoring))
               for r in range(robots)]
    for t in workers:
        t.start()
    barrier.wait()
    begin = time.monotonic()
    time.sleep(duration_s)
    end = time.monotonic()
    stop.set()
    for t in workers:
        t.join(timeout=120)
    per_robot = []
    every = []
    for r in range(robots):
        inside = [lat for t_done, lat in done[r] if begin <= t_done <= end]
        every += inside
        per_robot.append(dict(robot=r, decisions=len(inside), errors=len(errors[r]),
                              **_stats_ms(inside)))
    first_errors = sorted({e for errs in errors for e in errs})[:3]
    return dict(robots=robots, duration_s=end - begin, decisions=len(every),
                scoring=sorted(set(scoring)),
                throughput_per_s=len(every) / (end - begin),
                errors=sum(len(e) for e in errors), first_errors=first_errors,
                per_robot=per_robot, **_stats_ms(every))


def local_baseline(model_dir: str, images: List[np.ndarray], count: int = 30) -> Dict:
    """Time the same decisions in-process (HFBackend, 1 thread): what the server adds."""
    backend = HFBackend(model_dir)
    backend.load()
    questions = vocabulary.target_questions(TARGET)
    backend.score(images[0], questions)
    latencies = []
    for i in range(count):
        t0 = time.monotonic()
        backend.score(images[i % len(images)], questions)
        latencies.append(time.monotonic() - t0)
    return dict(decisions=count, **_stats_ms(latencies))


def write_results(out: Path, results: List[Dict], baseline: Optional[Dict],
                  meta: Dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / 'results.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['robots', 'robot', 'decisions', 'errors', 'p50_ms', 'p95_ms',
                         'mean_ms', 'fleet_throughput_per_s'])
        for res in results:
            for row in res['per_robot']:
                writer.writerow([res['robots'], row['robot'], row['decisions'], row['errors'],
                                 f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}",
                                 f"{row['mean_ms']:.1f}", f"{res['throughput_per_s']:.2f}"])
    summary = dict(meta, local_in_process=baseline, fleets=results)
    (out / 'summary.json').write_text(json.dumps(summary, indent=2) + '\n')
    plot(results, baseline, out / 'latency.png', meta.get('title', ''))


def plot(results: List[Dict], baseline: Optional[Dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    n = [r['robots'] for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(n, [r['p50_ms'] for r in results], 'o-', label='p50 per decision')
    left.plot(n, [r['p95_ms'] for r in results], 's--', label='p95 per decision')
    for r in results:
        left.scatter([r['robots']] * len(r['per_robot']),
                     [x['p95_ms'] for x in r['per_robot']], color='gray', s=8, zorder=3)
    if baseline:
        left.axhline(baseline['p50_ms'], color='green', ls=':',
                     label='in-process p50 (no server)')
    left.set_xlabel('concurrent robots')
    left.set_ylabel('decision latency (ms)')
    left.set_xscale('log', base=2)
    left.set_xticks(n, [str(x) for x in n])
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.plot(n, [r['throughput_per_s'] for r in results], 'o-')
    right.set_xlabel('concurrent robots')
    right.set_ylabel('fleet decisions / s')
    right.set_xscale('log', base=2)
    right.set_xticks(n, [str(x) for x in n])
    right.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--server', default='',
                        help='served-model spec (openai://HOST:PORT/v1?model=NAME); default: '
                        'start a server (--kind) on --model for the run')
    parser.add_argument('--kind', choices=KINDS, default='transformers',
                        help='the server started without --server: transformers serve, or '
                        "llama.cpp's server (llamacpp; its venv: "
                        'bash scripts/setup_llamacpp_server.sh)')
    parser.add_argument('--model', default='',
                        help="model folder for the local server; '' = embedded")
    parser.add_argument('--robots', type=int, nargs='+', default=[1, 2, 4, 8])
    parser.add_argument('--duration', type=float, default=20.0,
                        help='seconds of decisions per fleet size (after warm-up)')
    parser.add_argument('--server-threads', type=int, default=1,
                        help='CPU threads of the local server')
    parser.add_argument('--out', default=DEFAULT_OUT)
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip the in-process latency baseline')


def run(args) -> int:
    out = Path(args.out)
    images = frames()
    model_dir = resolve_model(args.model)
    meta = {'command': 'vlm-nav bench served ' + ' '.join(sys.argv[3:]),
            'decision': f'4 closed-set questions about {TARGET!r} (Observe), 96 px frame',
            'cpu_count': os.cpu_count(), 'duration_s_per_fleet': args.duration}
    results = []
    # The server's log goes to a temporary file; its tail is in the error if it won't start.
    log_path = os.path.join(tempfile.gettempdir(), f'vlm_nav_bench_served_{os.getpid()}.log')
    start = llamacpp_server if args.kind == 'llamacpp' else local_server
    with (_given(args.server) if args.server else
          start(model_dir, threads=args.server_threads, log_path=log_path)) as spec:
        meta['server'] = spec
        for robots in args.robots:
            print(f'[bench served] {robots} robot(s), {args.duration:.0f} s ...', flush=True)
            res = run_fleet(spec, robots, args.duration, images)
            print(f"[bench served] {robots:2d} robots: {res['throughput_per_s']:.2f} "
                  f"decisions/s, p50 {res['p50_ms']:.0f} ms, p95 {res['p95_ms']:.0f} ms, "
                  f"errors {res['errors']}", flush=True)
            results.append(res)
    baseline = None
    if not args.no_baseline and not args.server:
        import torch
        torch.set_num_threads(args.server_threads)
        baseline = local_baseline(model_dir, images)
        print(f"[bench served] in-process baseline: p50 {baseline['p50_ms']:.0f} ms, "
              f"p95 {baseline['p95_ms']:.0f} ms", flush=True)
    names = {'transformers': 'transformers serve (CPU)', 'llamacpp': 'llama.cpp server (CPU)'}
    meta['title'] = (f'{len(images)} sim frames, Observe decisions, server '
                     f"{'given' if args.server else names[args.kind]}")
    write_results(out, results, baseline, meta)
    print(f'[bench served] wrote {out}/results.csv, summary.json, latency.png')
    return 0 if all(r['decisions'] for r in results) else 1


@contextmanager
def _given(spec: str) -> Iterator[str]:
    yield spec
