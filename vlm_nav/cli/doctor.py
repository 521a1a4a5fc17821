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
`vlm-nav doctor`: check that this machine can run vlm_nav and that a model fits.

Each check gives ok / warn / fail, what was found, and for a problem a one-line fix.
Checks: Python, packages (torch, transformers, ...), CUDA/GPU and its memory, RAM, ROS
environment, DDS settings, camera devices, the interface package, and the model: is it
supported, and does it fit at each precision (registry estimate vs free memory); for a
served model, that the server lists it and answers a question as the vlm_node checks at
load, and that the spec's timeout x tries fits vlm_node's inference_timeout_s.
``--profile`` also loads the model and runs one decision (the navigator's four closed-set
questions on a simulator frame), reporting load time, peak memory and latency; it fails
when the answers are not valid or every probability is uniform.
``--json`` prints the same as JSON. The exit code is 1 when any check fails.

With ``--model``, the ``boards`` check prints the model's memory at each precision and the
boards it fits (``vlm_nav.models.fit``: Jetson Orin Nano/NX/AGX, 8/16/24 GB GPUs). The
model may also be a published shape (``qwen2.5-vl-3b``, its hub id) or a family
(``qwen3-vl``: every size), whose config is built locally from published dimensions.
"""

# Only the standard library and the pure-Python vocabulary are imported here: each check
# imports what it checks (torch, psutil, rclpy, vlm_nav_interfaces, transformers, and
# vlm_nav.models with numpy and pillow), so a missing package is a finding, not a crash.
import argparse
from dataclasses import asdict, dataclass, field
import glob
from importlib.metadata import PackageNotFoundError, version
import importlib.util
import json
import os
import platform
import re
import resource
import sys
import time
from typing import Any, Callable, Dict, List, Optional

from vlm_nav.perception import vocabulary

OK, WARN, FAIL = 'ok', 'warn', 'fail'
GIB = 2 ** 30
# Headroom over the registry's estimate (activations, allocator slack, the process itself).
MEMORY_HEADROOM = 1.2
MIN_PYTHON = (3, 10)
SETUP_HINT = 'pip install -r requirements-robot.txt (or ./run.sh, which sets up .venv)'


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ''
    data: Dict[str, Any] = field(default_factory=dict)


def _gib(n: Optional[float]) -> str:
    if n is None:
        return 'unknown'
    return f'{n / GIB:.2f} GiB' if n >= GIB / 10 else f'{n / 2 ** 20:.1f} MiB'


# ----------------------------------------------------------------------------- system

def check_python() -> Check:
    version = platform.python_version()
    data = {'version': version, 'executable': sys.executable,
            'implementation': platform.python_implementation()}
    if sys.version_info[:2] < MIN_PYTHON:
        return Check('python', FAIL, f'Python {version} is older than '
                     f'{".".join(map(str, MIN_PYTHON))}',
                     'use Python 3.10+ (ROS 2 Kilted targets 3.12 on Ubuntu 24.04; the pip '
                     'path is tested on 3.11)', data)
    return Check('python', OK, f'{version} ({sys.executable})', data=data)


PACKAGES = (  # (import name, distribution, needed for)
    ('torch', 'torch', 'local models'),
    ('transformers', 'transformers', 'local models'),
    ('tokenizers', 'tokenizers', 'local models'),
    ('safetensors', 'safetensors', 'local models'),
    ('numpy', 'numpy', 'everything'),
    ('PIL', 'pillow', 'images'),
    ('scipy', 'scipy', 'navigator (the map of the lidar scan)'),
    ('cv2', 'opencv-python-headless', 'camera_node'),
    ('openai', 'openai', 'served models (openai://...)'),
    ('pybullet', 'pybullet', 'the simulator'),
    ('onnxruntime', 'onnxruntime', 'vlm_node runtime onnxruntime'),
    ('onnx', 'onnx', 'vlm_node runtime onnxruntime with int8'),
)
REQUIRED = {'torch', 'transformers', 'tokenizers', 'safetensors', 'numpy', 'PIL', 'scipy'}


def check_packages() -> Check:
    found, missing = {}, []
    for module, dist, purpose in PACKAGES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            if importlib.util.find_spec(module) is None:
                missing.append((module, dist, purpose))
            else:
                found[dist] = 'unknown version'
    data = {'versions': found, 'missing': [d for _, d, _ in missing]}
    detail = ', '.join(f'{k} {v}' for k, v in found.items())
    required_missing = [d for m, d, _ in missing if m in REQUIRED]
    if required_missing:
        return Check('packages', FAIL, f"missing {', '.join(required_missing)}; " + detail,
                     SETUP_HINT, data)
    if missing:
        what = '; '.join(f'{d} (for {p})' for _, d, p in missing)
        return Check('packages', WARN, f'missing {what}; ' + detail,
                     f"pip install {' '.join(d for _, d, _ in missing)} (pins in "
                     'requirements-robot.txt)', data)
    return Check('packages', OK, detail, data=data)


def gpu_info() -> Dict[str, Any]:
    """Return the CUDA devices with their free/total memory; {'available': False} without one."""
    try:
        import torch
    except ImportError:
        return {'available': False, 'reason': 'torch not installed'}
    info: Dict[str, Any] = {'torch_cuda': torch.version.cuda,
                            'available': torch.cuda.is_available(), 'devices': []}
    if not info['available']:
        return info
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        props = torch.cuda.get_device_properties(i)
        info['devices'].append({'index': i, 'name': props.name, 'free_bytes': int(free),
                                'total_bytes': int(total),
                                'capability': f'{props.major}.{props.minor}',
                                'bf16': bool(torch.cuda.is_bf16_supported())})
    return info


def check_gpu(device: str, info: Dict[str, Any]) -> Check:
    wants_cuda = device.startswith('cuda')
    if not info.get('available'):
        build = info.get('torch_cuda')
        why = ('this torch is a CPU build' if build is None and 'reason' not in info
               else info.get('reason', 'no CUDA device visible'))
        if wants_cuda:
            return Check('gpu', FAIL, f'device {device} asked for, but no CUDA GPU ({why})',
                         'install the NVIDIA driver and a CUDA torch wheel (on a Jetson: the '
                         "vendor's torch), or set the vlm_node parameter device:=cpu", info)
        return Check('gpu', OK, f'no CUDA GPU ({why}); models run on the CPU', data=info)
    lines = [f"cuda:{d['index']} {d['name']} ({_gib(d['free_bytes'])} free of "
             f"{_gib(d['total_bytes'])}, sm {d['capability']})" for d in info['devices']]
    if wants_cuda:
        index = int(device.split(':')[1]) if ':' in device else 0
        if index >= len(info['devices']):
            return Check('gpu', FAIL, f'{device} asked for; only: ' + '; '.join(lines),
                         f'use cuda:0..cuda:{len(info["devices"]) - 1}', info)
    return Check('gpu', OK, '; '.join(lines), data=info)


def check_ram() -> Check:
    import psutil
    vm = psutil.virtual_memory()
    data = {'total_bytes': int(vm.total), 'available_bytes': int(vm.available)}
    detail = f'{_gib(vm.available)} available of {_gib(vm.total)}'
    if vm.available < 0.5 * GIB:
        return Check('ram', FAIL, detail, 'free memory: stop other processes, or use a '
                     'served model (openai://...) so the robot holds no weights', data)
    if vm.available < 2 * GIB:
        return Check('ram', WARN, detail, 'under 2 GiB free: only small models fit; consider '
                     'a served model (openai://...)', data)
    return Check('ram', OK, detail, data=data)


# ----------------------------------------------------------------------------- ROS

def check_ros() -> Check:
    env = {k: os.environ.get(k) for k in ('ROS_DISTRO', 'ROS_VERSION', 'RMW_IMPLEMENTATION',
                                          'ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                          'ROS_STATIC_PEERS', 'ROS_LOCALHOST_ONLY')}
    data: Dict[str, Any] = {'env': env}
    try:
        import rclpy
        data['rclpy'] = os.path.dirname(rclpy.__file__)
    except ImportError as err:
        return Check('ros', FAIL, f'rclpy cannot be imported ({err})',
                     'source /opt/ros/<distro>/setup.bash, or use the pip path (./run.sh)',
                     data)
    try:
        from rclpy.utilities import get_rmw_implementation_identifier
        data['rmw'] = get_rmw_implementation_identifier()
    except Exception as err:  # noqa: B902 - a broken rmw is a finding, not a crash
        return Check('ros', FAIL, f'rclpy found but no usable RMW ({err})',
                     'install an rmw (ros-rmw-fastrtps-cpp) or unset RMW_IMPLEMENTATION', data)
    problems, fixes = [], []
    domain = env['ROS_DOMAIN_ID']
    if domain not in (None, ''):
        if not domain.isdigit() or int(domain) > 232:
            problems.append(f'ROS_DOMAIN_ID={domain!r} is not 0-232')
            fixes.append('export ROS_DOMAIN_ID=<0-101>')
        elif int(domain) > 101:
            problems.append(f'ROS_DOMAIN_ID={domain} may clash with ephemeral ports on Linux')
            fixes.append('use a ROS_DOMAIN_ID of 0-101')
    scope = env['ROS_AUTOMATIC_DISCOVERY_RANGE']
    if scope not in (None, '', 'SUBNET', 'LOCALHOST', 'OFF', 'SYSTEM_DEFAULT'):
        problems.append(f'ROS_AUTOMATIC_DISCOVERY_RANGE={scope!r} is not a known value')
        fixes.append('use SUBNET (robot + laptop), LOCALHOST (one machine) or OFF')
    if env['ROS_LOCALHOST_ONLY'] not in (None, ''):
        problems.append('ROS_LOCALHOST_ONLY is deprecated since Jazzy')
        fixes.append('unset ROS_LOCALHOST_ONLY; export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST')
    detail = (f"rmw {data['rmw']}, distro {env['ROS_DISTRO'] or '(pip wheels, unset)'}, "
              f"domain {domain or 0}, discovery {scope or 'SUBNET (default)'}")
    if problems:
        return Check('ros', WARN, detail + '; ' + '; '.join(problems), '; '.join(fixes), data)
    return Check('ros', OK, detail, data=data)


def check_dds() -> Check:
    rmw = os.environ.get('RMW_IMPLEMENTATION') or 'rmw_fastrtps_cpp'
    data: Dict[str, Any] = {'rmw': rmw}
    if 'fastrtps' in rmw or 'fastdds' in rmw:
        transports = os.environ.get('FASTDDS_BUILTIN_TRANSPORTS')
        data['FASTDDS_BUILTIN_TRANSPORTS'] = transports
        for var in ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'):
            path = os.environ.get(var)
            if path and not os.path.isfile(path):
                return Check('dds', FAIL, f'{var}={path} does not exist',
                             f'unset {var} or point it at a Fast DDS XML profile', data)
            data[var] = path
        if transports != 'LARGE_DATA' and not data.get('FASTDDS_DEFAULT_PROFILES_FILE') \
                and not data.get('FASTRTPS_DEFAULT_PROFILES_FILE'):
            return Check('dds', WARN, f'Fast DDS with FASTDDS_BUILTIN_TRANSPORTS='
                         f'{transports or "(default: UDP)"}: camera images fragment over UDP',
                         'export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA (shared memory + TCP '
                         'for big samples; run.sh does this)', data)
        return Check('dds', OK, f'Fast DDS, transports {transports or "from XML profile"}',
                     data=data)
    if 'cyclonedds' in rmw:
        uri = os.environ.get('CYCLONEDDS_URI')
        data['CYCLONEDDS_URI'] = uri
        if uri and not uri.lstrip().startswith('<'):
            path = uri.replace('file://', '')
            if not os.path.isfile(path):
                return Check('dds', FAIL, f'CYCLONEDDS_URI={uri} does not exist',
                             'unset CYCLONEDDS_URI or point it at a Cyclone XML file', data)
        return Check('dds', OK, f'Cyclone DDS, config {uri or "default"}', data=data)
    return Check('dds', OK, f'{rmw} (not checked further)', data=data)


def check_camera() -> Check:
    devices = sorted(glob.glob('/dev/video*'))
    usable = [d for d in devices if os.access(d, os.R_OK | os.W_OK)]
    data = {'devices': devices, 'usable': usable}
    if not devices:
        return Check('camera', WARN, 'no V4L2 camera (/dev/video*)',
                     'plug in a camera (in a container: --device /dev/video0); not needed for '
                     'the sim, replay or image-folder sources', data)
    if not usable:
        return Check('camera', WARN, f"{', '.join(devices)} present but not readable",
                     'sudo usermod -aG video $USER (then log in again)', data)
    return Check('camera', OK, ', '.join(usable), data=data)


def check_interfaces() -> Check:
    try:
        import vlm_nav_interfaces
        from vlm_nav_interfaces import msg, srv
        names = ('Ask', 'Describe', 'Observe', 'SetTarget')
        missing = [n for n in names if not hasattr(srv, n)]
        missing += [n for n in ('TargetObservation', 'SceneDescription', 'NavigatorState')
                    if not hasattr(msg, n)]
    except ImportError as err:
        return Check('interfaces', FAIL, f'vlm_nav_interfaces cannot be imported ({err})',
                     'colcon build --base-paths src src/vlm_nav/vlm_nav_interfaces && source '
                     'install/setup.bash (pip path: bash scripts/setup_env.sh)')
    where = os.path.dirname(vlm_nav_interfaces.__file__)
    if missing:
        return Check('interfaces', FAIL, f'vlm_nav_interfaces at {where} lacks '
                     f"{', '.join(missing)} (stale build)",
                     'rebuild it (colcon build, or bash scripts/setup_env.sh)', {'path': where})
    return Check('interfaces', OK, f'vlm_nav_interfaces ({where})', data={'path': where})


# ----------------------------------------------------------------------------- model

def _available_bytes(device: str, gpu: Dict[str, Any]) -> Optional[int]:
    if device.startswith('cuda'):
        index = int(device.split(':')[1]) if ':' in device else 0
        devices = gpu.get('devices') or []
        return devices[index]['free_bytes'] if index < len(devices) else None
    import psutil
    return int(psutil.virtual_memory().available)


def _memory_estimates(config) -> Dict[str, Dict[str, int]]:
    from vlm_nav.models import registry
    by_dtype = getattr(registry, 'memory_by_dtype', None)
    if by_dtype is not None:
        return {dtype: {'weights_bytes': e.weights_bytes, 'kv_cache_bytes': e.kv_cache_bytes,
                        'total_bytes': e.total_bytes, 'parameters': e.parameters}
                for dtype, e in by_dtype(config).items()}
    out = {}
    for dtype in registry.DTYPES:
        weights = registry.estimate_memory_bytes(config, dtype)
        out[dtype] = {'weights_bytes': weights, 'total_bytes': weights}
    return out


def check_model(model: str, device: str, dtype: str, gpu: Dict[str, Any],
                allow_download: bool = False) -> Check:
    from vlm_nav.models import fit, registry, resolve_model
    from vlm_nav.models.served import is_served_spec
    path = resolve_model(model)
    label = model or "'' (embedded)"
    if is_served_spec(path):
        return check_served(path)
    data: Dict[str, Any] = {'model': model, 'resolved': path, 'device': device, 'dtype': dtype}
    folder = os.path.isdir(os.path.expanduser(path))
    hub_id = re.match(r'^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$', path) is not None
    shapes = [] if folder else fit.find(model)
    if not folder and not shapes and (path.startswith(('/', '.', '~'))
                                      or os.path.exists(path) or not hub_id):
        return Check('model', FAIL, f"model folder '{path}' does not exist", 'give a folder '
                     "written by save_pretrained, a hub id, '' for the embedded model, or "
                     'openai://HOST:PORT/v1?model=NAME for a server', data)
    if folder and not os.path.isfile(os.path.join(os.path.expanduser(path), 'config.json')):
        return Check('model', FAIL, f"'{path}' has no config.json",
                     'point at the folder save_pretrained wrote (it holds config.json)', data)
    config = None
    try:
        from transformers import AutoConfig
        config = AutoConfig.from_pretrained(os.path.expanduser(path),
                                            local_files_only=not allow_download)
    except (OSError, ValueError) as err:
        if not shapes:
            fix = ('pre-download it: `hf download {0}` (or pass a local folder)'.format(path)
                   if not folder else 'repair or re-save the folder with save_pretrained')
            if folder:
                what = 'config unreadable (' + ' '.join(str(err).split())[:200] + ')'
            else:
                what = ('unknown model: not a model folder, not a hub id in the local hub '
                        'cache, nor a published shape or family vlm-nav knows '
                        '(docs/models.md, what fits where)')
            return Check('model', FAIL, f'{label}: {what}', fix, data)
    if config is None and len(shapes) > 1:
        data['shapes'] = [s.name for s in shapes]
        return Check('model', OK, f'{label}: the {shapes[0].family} family, '
                     f"{len(shapes)} published sizes ({', '.join(data['shapes'])}); "
                     'name one to check it against this machine', data=data)
    if config is None:
        shape = shapes[0]
        data['shape'] = shape.name
        label = f'{shape.name} (published shape, config of {shape.model_id} built here)'
        config = shape.build()
        if not fit.buildable(shape):
            config = fit._stand_in_tower(config)
    data['model_type'] = getattr(config, 'model_type', None)
    try:
        family = registry.family_for(config)
        supported = registry.is_image_text_to_text(config) or family.name != 'generic'
    except Exception as err:  # noqa: B902 - the registry says why it refuses
        family, supported, data['reason'] = None, False, str(err)
    if not supported:
        reason = f" ({data['reason']})" if 'reason' in data else ''
        return Check('model', FAIL, f"{label}: '{data['model_type']}' is not a supported "
                     'vision-language model' + reason,
                     'use an image-text-to-text model (llava, idefics3/smolvlm, ...); see the '
                     'README model table', data)
    data['family'] = family.name
    try:
        estimates = _memory_estimates(config)
    except Exception as err:  # noqa: B902 - an estimate is a courtesy
        return Check('model', WARN, f'{label}: {family.name}, memory not estimable ({err})',
                     'run `vlm-nav doctor --profile` to measure it', data)
    if device != 'cpu':
        estimates.pop('int8', None)       # dynamic INT8 is a CPU runtime
    available = _available_bytes(device, gpu)
    data['available_bytes'] = available
    fits = {}
    for name, est in estimates.items():
        need = est['total_bytes'] * MEMORY_HEADROOM
        est['fits'] = available is None or need <= available
        fits[name] = est['fits']
    data['precisions'] = estimates
    data['parameters'] = next(iter(estimates.values())).get('parameters')
    table = ', '.join(f"{k} {_gib(v['total_bytes'])} {'fits' if v['fits'] else 'too big'}"
                      for k, v in estimates.items())
    where = f'{device} ({_gib(available)} free)'
    detail = f'{label}: {family.name} family; on {where}: {table}'
    if fits.get(dtype, True):
        return Check('model', OK, detail, data=data)
    smaller = [k for k, ok in fits.items() if ok]
    if smaller:
        return Check('model', WARN, detail + f'; {dtype} does not fit',
                     f'set the vlm_node parameter dtype:={smaller[-1]}', data)
    return Check('model', FAIL, detail + '; fits at no precision',
                 'use a smaller model, a GPU with more memory, or a served model '
                 '(openai://HOST:PORT/v1?model=NAME)', data)


def check_boards(model: str, allow_download: bool = False) -> Optional[Check]:
    """
    Give the model's memory per precision against the boards (the docs' "what fits where").

    A published shape or family from its table row(s); a folder or cached hub id from its
    config. None for the embedded and served models, and where the model check already
    says why the config cannot be read.
    """
    from vlm_nav.models import fit, resolve_model
    from vlm_nav.models.served import is_served_spec
    if not model or is_served_spec(model):
        return None
    shapes = fit.find(model)
    path = os.path.expanduser(resolve_model(model))
    rows = None
    if not os.path.isdir(path):
        rows = fit.fits(shapes) if shapes else None
    if rows is None:
        try:
            from transformers import AutoConfig
            config = AutoConfig.from_pretrained(path, local_files_only=not allow_download)
        except (OSError, ValueError):
            return None
        try:
            rows = [fit.estimate(config, name=model, model_id=model,
                                 family=getattr(config, 'model_type', ''))]
        except Exception as err:  # noqa: B902 - an estimate is a courtesy
            return Check('boards', WARN, f'{model}: memory not estimable ({err})',
                         'run `vlm-nav doctor --profile` to measure it')
    boards = [{'name': b.name, 'memory_gib': b.memory_gib, 'reserved_gib': b.reserved_gib,
               'budget_bytes': b.budget_bytes, 'shared_memory': b.shared} for b in fit.BOARDS]
    data = {'headroom': fit.MEMORY_HEADROOM, 'boards': boards, 'models': [
        {'name': r.name, 'model_id': r.model_id, 'parameters': r.parameters,
         'vision_parameters': r.vision_parameters, 'image_tokens': r.image_tokens,
         'context_tokens': r.context_tokens, 'kv_cache_bytes': r.kv_cache_bytes,
         'total_bytes': r.total_bytes, 'fits': {p: r.boards(p) for p in fit.PRECISIONS}}
        for r in rows]}
    detail = (f'memory per precision (+{fit.MEMORY_HEADROOM - 1:.0%} headroom; Jetsons keep '
              f'{fit.JETSON_RESERVED_GIB:g} GiB for the OS and ROS, GPUs '
              f'{fit.DESKTOP_RESERVED_GIB:g} GiB):\n' + fit.boards_table(rows))
    return Check('boards', OK, detail, data=data)


def check_served(spec: str) -> Check:
    """
    Load a served model as vlm_node does: the same check, the same message.

    The server must list its models and answer one question with a chat completion.
    """
    from vlm_nav.models.base import ModelLoadError
    from vlm_nav.models.served import ServedBackend
    try:
        backend = ServedBackend(spec)
        backend.load()
    except ModelLoadError as err:
        detail, _, fix = str(err).partition('. Fix: ')
        return Check('model', FAIL, detail, (fix or 'check the spec and the server') +
                     '; vlm_node keeps trying (server_retry_max_s) and becomes ready once '
                     'the server answers', {'model': spec})
    data = {'model': spec, 'served_model': backend.model, 'server': backend.base_url,
            'scoring': backend.scoring}
    return Check('model', OK, f'server {backend.base_url} serves {backend.model!r} and '
                 f"answers ({backend.scoring}; memory is the server's, --profile measures "
                 'latency)', data=data)


def inference_timeout_s(params_file: str = '') -> Optional[float]:
    """Return vlm_node's inference_timeout_s from config/vlm_nav.yaml; None if unreadable."""
    try:
        from vlm_nav.bringup.profiles import node_parameters
        return float(node_parameters('vlm_node', params_file)['inference_timeout_s'])
    except Exception:  # noqa: B902 - no config (or no yaml): the caller says so
        return None


def check_served_budget(spec: str, deadline_s: Optional[float]) -> Optional[Check]:
    """
    Check that a served spec's longest request (timeout x tries + waits) fits the deadline.

    None for a model that is not served.
    """
    from vlm_nav.models.base import ModelLoadError
    from vlm_nav.models.served import is_served_spec, ServedBackend
    if not is_served_spec(spec):
        return None
    try:
        backend = ServedBackend(spec)
    except ModelLoadError as err:
        return Check('served_budget', FAIL, str(err), 'fix the spec')
    source = 'config/vlm_nav.yaml'
    if deadline_s is None:
        deadline_s, source = 5.0, "vlm_node's default (config/vlm_nav.yaml unreadable)"
    data = {'timeout_s': backend.timeout_s, 'retries': backend.retries,
            'request_budget_s': backend.budget_s, 'inference_timeout_s': deadline_s}
    detail = (f'timeout {backend.timeout_s:g} s x {backend.retries + 1} tries + waits = '
              f'{backend.budget_s:g} s per request; inference_timeout_s {deadline_s:g} s '
              f'({source})')
    if backend.budget_s > deadline_s:
        return Check('served_budget', WARN, detail + ': a hung server outlasts the deadline, '
                     'and vlm_node then refuses work until it answers',
                     'lower timeout= or retries= in the spec, or raise the vlm_node parameter '
                     f'inference_timeout_s above {backend.budget_s:g}', data)
    return Check('served_budget', OK, detail, data=data)


def profile_model(model: str, device: str, dtype: str, decisions: int = 3) -> Check:
    """Load the model, run one cold and a few warm decisions; time and memory."""
    from vlm_nav.models import load_backend, ModelLoadError, resolve_model
    path = resolve_model(model)
    cuda = device.startswith('cuda')
    if cuda:
        import torch
        torch.cuda.reset_peak_memory_stats()
    started = time.monotonic()
    try:
        backend = load_backend(path, device=device, dtype=dtype)
    except ModelLoadError as err:
        return Check('profile', FAIL, f'load failed: {err}', 'see the model check above')
    load_s = time.monotonic() - started
    image = _profile_image()
    questions = vocabulary.target_questions('red ball')
    latencies, every = [], []
    try:
        for _ in range(1 + decisions):
            t0 = time.monotonic()
            answers = backend.score(image, questions)
            latencies.append(time.monotonic() - t0)
            every += answers
    except Exception as err:  # noqa: B902 - a failing decision is the finding
        detail, _, fix = f'decision failed: {type(err).__name__}: {err}'.partition('. Fix: ')
        return Check('profile', FAIL, detail,
                     fix or 'run the same model with the vlm_node and read its log',
                     {'load_s': load_s})
    warm = sorted(latencies[1:]) or latencies
    data = {'load_s': load_s, 'first_decision_ms': latencies[0] * 1e3,
            'decision_ms': warm[len(warm) // 2] * 1e3, 'decisions': len(latencies),
            'questions_per_decision': len(questions),
            'answers': {q: a.best for (q, _), a in zip(questions, answers)},
            'peak_rss_bytes': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            'backend': type(backend).__name__}
    data.update({k: v for k, v in backend.diagnostics().items() if k == 'scoring'})
    if cuda:
        import torch
        data['peak_gpu_allocated_bytes'] = int(torch.cuda.max_memory_allocated())
    detail = (f"load {load_s:.2f} s, first decision {data['first_decision_ms']:.0f} ms, then "
              f"{data['decision_ms']:.0f} ms (median of {len(warm)}), peak RSS "
              f"{_gib(data['peak_rss_bytes'])}")
    if cuda:
        detail += f", peak GPU allocated {_gib(data['peak_gpu_allocated_bytes'])}"
    if 'scoring' in data:
        detail += f", scoring: {data['scoring'].split(':')[0]}"
    if all(_uniform(a.probs) for a in every):
        return Check('profile', FAIL, detail + '; every answer gives each choice the same '
                     'probability: the model does not answer the questions',
                     'check the model is a trained vision-language model (and, served, that '
                     'the server runs it with its chat template)', data)
    return Check('profile', OK, detail, data=data)


def _uniform(probs) -> bool:
    return len(probs) > 0 and max(probs) - min(probs) < 1e-6


def _profile_image():
    try:
        from vlm_nav.sim.dataset import sample_view
        return sample_view(0, 0)[0]
    except Exception:  # noqa: B902 - no simulator: any RGB frame times the same
        import numpy as np
        return np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)


# ----------------------------------------------------------------------------- running

def run_checks(model: str = '', device: str = 'cpu', dtype: str = 'float32',
               profile: bool = False, allow_download: bool = False) -> List[Check]:
    gpu = gpu_info()

    def model_check() -> Check:
        return check_model(model, device, dtype, gpu, allow_download)

    steps: List[Callable[[], Optional[Check]]] = [
        check_python, check_packages, lambda: check_gpu(device, gpu), check_ram, check_ros,
        check_dds, check_camera, check_interfaces, model_check,
        lambda: check_boards(model, allow_download),
        lambda: check_served_budget(model, inference_timeout_s())]
    checks = []
    model_failed = False
    for step in steps:
        try:
            check = step()
        except Exception as err:  # noqa: B902 - one broken check must not hide the others
            name = getattr(step, '__name__', 'check').replace('check_', '')
            check = Check(name, FAIL, f'check crashed: {type(err).__name__}: {err}',
                          'report this as a vlm_nav bug')
        if check is not None:
            checks.append(check)
            model_failed = model_failed or (step is model_check and check.status == FAIL)
    if profile:
        if model_failed:
            checks.append(Check('profile', FAIL, 'skipped: the model check failed',
                                'fix the model check first'))
        else:
            checks.append(profile_model(model, device, dtype))
    return checks


def report(checks: List[Check]) -> Dict[str, Any]:
    counts = {s: sum(c.status == s for c in checks) for s in (OK, WARN, FAIL)}
    return {'ok': counts[FAIL] == 0, 'counts': counts, 'checks': [asdict(c) for c in checks]}


def format_human(checks: List[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = ['vlm-nav doctor']
    for c in checks:
        first, *more = c.detail.split('\n')
        lines.append(f'  [{c.status:<4}] {c.name:<{width}}  {first}')
        lines += [f"  {'':6} {'':<{width}}  {line}" for line in more]
        if c.fix and c.status != OK:
            lines.append(f"  {'':6} {'':<{width}}  fix: {c.fix}")
    counts = report(checks)['counts']
    lines.append(f'{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} fail')
    return '\n'.join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--model', default='',
                        help="HF id, folder, openai://HOST:PORT/v1?model=NAME; '' = embedded; "
                        'or a published shape or family (qwen2.5-vl-3b, qwen3-vl, ...): '
                        'its memory per precision and the boards it fits')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:N (as the vlm_node)')
    parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16',
                                                               'float16'))
    parser.add_argument('--profile', action='store_true',
                        help='load the model and time one decision')
    parser.add_argument('--allow-download', action='store_true',
                        help='let the model check fetch a hub config that is not cached')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads for --profile (0 = torch default)')
    parser.add_argument('--json', action='store_true', help='print JSON')


def run(args) -> int:
    if args.profile and args.threads:
        import torch
        torch.set_num_threads(args.threads)
    checks = run_checks(args.model, args.device, args.dtype, args.profile, args.allow_download)
    if args.json:
        print(json.dumps(report(checks), indent=2, default=str))
    else:
        print(format_human(checks))
    return 0 if report(checks)['ok'] else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='vlm-nav doctor', description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
