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
The VLM inference service: keeps the newest camera frame and answers questions about it.

Inference runs on one worker thread, never in a subscription callback; service
callbacks wait for it with a deadline on a reentrant group, so frames keep arriving
and diagnostics keep flowing while the model thinks. Answers carry the stamp of the
frame the model saw, which is what lets the navigator stop on stale vocabulary.

A served model (openai://...) that cannot be loaded is tried again with backoff until its
server answers; while its requests fail, /diagnostics is ERROR with the last failure,
back to OK once one succeeds.

A managed (lifecycle) node, driven through the standard lifecycle services
(`ros2 lifecycle set /vlm_node <transition>`): configure loads the model, activate serves,
deactivate refuses requests (success false, with how to activate), cleanup frees the
model's memory (the process's RSS before and after in the log), shutdown ends the calls in
flight and, run as its own process, exits. With `autostart` (the default) the node
configures and activates itself at start.
"""

from collections import OrderedDict
from concurrent.futures import (FIRST_COMPLETED, Future, ThreadPoolExecutor,
                                TimeoutError as FutureTimeout, wait as wait_futures)
import ctypes
from functools import partial
import gc
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple
import weakref

import numpy as np
import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleNodeMixin, LifecycleState
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image

from vlm_nav.models import is_served_spec, make_backend, ModelLoadError, resolve_model, VLMBackend
from vlm_nav.models.hf_backend import RUNTIMES
from vlm_nav.models.served import ServedBackend
from vlm_nav.perception import multiview, vocabulary
from vlm_nav.perception.vocabulary import clean_text
from vlm_nav.ros.diagnostics import DiagnosticsPublisher, ERROR, OK, WARN
from vlm_nav.ros.image import compressed_to_rgb, image_to_rgb, ImageError
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session, spin_until_shutdown
from vlm_nav_interfaces.msg import DetectedObject, SceneDescription, TargetObservation
from vlm_nav_interfaces.srv import Ask, Describe, Observe

MAX_QUESTION_CHARS = 500
MAX_CHOICES = 32
SAME_STAMP_NS = 1000          # Observe newer_than: stamps closer than this are one frame
STOPPING = 'vlm_node is shutting down'
SERVER_RETRY_FIRST_S = 0.5    # first wait before loading a served model again, doubling
EXIT_AFTER_SHUTDOWN_S = 0.5   # the shutdown transition's answer goes out, then the process ends
FREE_WAIT_S = 2.0             # cleanup waits this long for work in flight to let go of the model


def rss_mb() -> float:
    """Return this process's resident memory in MB (VmRSS of /proc/self/status); NaN if unknown."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float('nan')


def release_memory() -> None:
    """
    Give freed memory back: garbage-collect, empty torch's GPU caches, trim the C heap.

    The C heap keeps freed blocks for reuse; malloc_trim (glibc) returns them to the
    system, so the process's RSS shows what was freed.
    """
    gc.collect()
    torch = sys.modules.get('torch')     # only if a model imported it
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):   # not glibc
        pass


class Frame:
    """The newest frame, converted to RGB once on arrival (conversion is validation too)."""

    def __init__(self, stamp: Time, frame_id: str, rgb: np.ndarray):
        self.stamp = stamp
        self.frame_id = frame_id
        self.rgb = rgb
        self.received = time.monotonic()


class ScoreRequest:
    """
    One image's closed-set questions waiting for the worker.

    Requests queued together run as one batch (VLMBackend.score_batch).
    """

    def __init__(self, rgb: np.ndarray, questions: Sequence):
        self.rgb = rgb
        self.questions = questions
        self.future: Future = Future()


class VlmNode(LifecycleNode):

    def __init__(self, **kwargs):
        # LifecycleNode's own __init__, with the lifecycle services on a group of their own:
        # get_state answers while configure loads a model (transitions are serialized by
        # self._transitions); parameter services keep the node's default group.
        Node.__init__(self, 'vlm_node', **kwargs)
        LifecycleNodeMixin.__init__(self, callback_group=ReentrantCallbackGroup())
        self._transitions = threading.Lock()
        self._serialize_change_state()
        self.exit_on_shutdown = False     # main(): the shutdown transition ends the process
        autostart = declare(self, 'autostart', True, 'configure and activate at start '
                            '(load the model, then serve); false = wait unconfigured for '
                            '`ros2 lifecycle set /vlm_node configure`, then activate',
                            read_only=True)
        self.model_id = declare(self, 'model', '', 'Hugging Face model id or local folder; '
                                '"" = the embedded model shipped with vlm_nav; '
                                'openai://HOST:PORT/v1?model=NAME = an OpenAI-compatible '
                                'server (API key from $VLM_NAV_API_KEY)', read_only=True)
        self.device = declare(self, 'device', 'cpu', 'torch device: cpu, cuda, cuda:N',
                              read_only=True)
        self.dtype = declare(self, 'dtype', 'float32', 'weights precision; int8 = torch '
                             'dynamic quantization of Linear and Embedding weights (CPU)',
                             choices=['float32', 'bfloat16', 'float16', 'int8'], read_only=True)
        self.runtime = declare(self, 'runtime', 'auto', 'what scores closed-set questions: '
                               'torch; onnxruntime (the scoring pass exported to ONNX Runtime '
                               'at load, CPU); onnxruntime_int8 (that graph int8-quantized by '
                               'ONNX Runtime); auto = onnxruntime_int8 for the embedded model '
                               'on the CPU, else torch. Generation stays in torch; ignored '
                               'for a served model',
                               choices=list(RUNTIMES),
                               read_only=True)
        self.max_image_pixels = declare(
            self, 'max_image_pixels', 0, 'image budget of a dynamic-resolution model (Qwen-VL '
            'max_pixels; SmolVLM/Idefics3 longest edge = its square root; LFM2-VL image tokens '
            '= pixels / (patch x downsample)^2): fewer pixels, fewer image tokens, a cheaper '
            "prefill; 0 = the checkpoint's own; refused for fixed-resolution models",
            0, 1 << 26, read_only=True)
        declare(self, 'max_new_tokens', 48, 'default free-text budget (tokens)', 1, 512)
        declare(self, 'max_frame_age_s', 1.0, 'frames older than this are not answered', 0.05,
                60.0)
        declare(self, 'frame_wait_s', 0.5, 'longest wait for a frame newer than an Observe '
                "request's newer_than stamp", 0.0, 10.0)
        declare(self, 'inference_timeout_s', 5.0, 'deadline of one inference; with a served '
                "model keep the spec's timeout x (retries + 1) (+ 0.5 s per retry) under it",
                0.05, 600.0)
        declare(self, 'server_retry_max_s', 10.0, 'a served model (openai://...) that could not '
                'be loaded (server down, not answering, not an OpenAI API) is tried again after '
                '0.5 s, 1 s, 2 s, ... at most this many seconds apart, until its server answers; '
                '0 = try once. A local model is tried once', 0.0, 600.0)
        declare(self, 'diagnostics_period_s', 1.0, 'diagnostics publishing period', 0.1, 60.0)
        declare(self, 'threads', 0, 'torch CPU threads (0 = torch default)', 0, 256,
                read_only=True)
        cameras = declare(self, 'cameras', [''], 'camera namespaces served by this one model: '
                          "'' = camera/image_raw with services vlm_nav/*; 'front' = "
                          'front/camera/image_raw with front/vlm_nav/*', read_only=True)
        declare(self, 'max_batch', 8, 'closed-set requests (Ask with choices, Observe) queued '
                'together run as one batch of at most this many', 1, 64)
        declare(self, 'answer_during_generation', True, 'closed-set requests waiting while '
                'the model generates text (a description) are answered between its decoding '
                'steps; false = they wait for the whole generation')
        self.describe_views = list(declare(
            self, 'describe_views', list(multiview.VIEWS), 'views of the frame a description '
            'combines (identity first; mirror, shift, mirror_shift): the objects named in at '
            'least describe_min_votes of them (a free-text answer is described once)',
            read_only=True))
        self.describe_min_votes = declare(self, 'describe_min_votes',
                                          multiview.DEFAULT_MIN_VOTES,
                                          'views that must name an object', 1,
                                          len(multiview.VIEWS), read_only=True)
        problem = multiview.check_views(self.describe_views, self.describe_min_votes)
        if problem:
            raise ValueError(f'describe_views / describe_min_votes: {problem}')
        self.cameras = [c.strip().strip('/') for c in cameras] or ['']

        self._lock = threading.Lock()
        self._new_frame = threading.Condition(self._lock)   # wakes Observe calls waiting
        self._frames: Dict[str, Frame] = {}          # newest frame per camera
        self._pending: List[ScoreRequest] = []        # closed-set requests for the next batch
        self._backend: Optional[VLMBackend] = None
        self._model_state = 'unloaded'               # loading, ready, failed, unloaded
        self._unload = threading.Event()              # ends a served model's load retries
        self._last_cleanup = ''
        self._model_error = ''
        self._load_attempts = 0
        self._next_load_s = 0.0                       # wait before the next try (served)
        self._cache: 'OrderedDict[Tuple, object]' = OrderedDict()
        self._stats = {'frames_received': 0, 'frames_rejected': 0, 'last_reject_reason': '',
                       'requests_ok': 0, 'requests_failed': 0, 'deadline_exceeded': 0,
                       'cache_hits': 0, 'last_latency_ms': 0.0, 'last_frame': '',
                       'batches': 0, 'batched_requests': 0, 'largest_batch': 0,
                       'answered_mid_generation': 0}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix='vlm_infer')
        self._busy_since: Optional[float] = None
        self._abandoned: Optional[Future] = None    # timed out but still running
        self._queued = 0                              # submitted, not finished (diagnostics)
        self._stopping: Future = Future()             # done once stop_serving() was called

        frames = MutuallyExclusiveCallbackGroup()
        services = ReentrantCallbackGroup()
        for camera in self.cameras:
            ns = f'{camera}/' if camera else ''
            self.create_subscription(Image, f'{ns}camera/image_raw',
                                     partial(self._on_image, camera=camera),
                                     qos_profile_sensor_data, callback_group=frames)
            self.create_subscription(CompressedImage, f'{ns}camera/image_raw/compressed',
                                     partial(self._on_compressed, camera=camera),
                                     qos_profile_sensor_data, callback_group=frames)
            self.create_service(Ask, f'{ns}vlm_nav/ask', partial(self._on_ask, camera=camera),
                                callback_group=services)
            self.create_service(Describe, f'{ns}vlm_nav/describe',
                                partial(self._on_describe, camera=camera),
                                callback_group=services)
            self.create_service(Observe, f'{ns}vlm_nav/observe',
                                partial(self._on_observe, camera=camera),
                                callback_group=services)
        self._diagnostics = DiagnosticsPublisher(self)
        self._diag_timer = self.create_timer(self.get_parameter('diagnostics_period_s').value,
                                             self._publish_diagnostics, callback_group=frames)
        self._autostarting = bool(autostart)         # until autostart's configure began
        if autostart:
            threading.Thread(target=self._autostart, name='vlm_autostart', daemon=True).start()
        else:
            self.get_logger().info(
                f'autostart is false: unconfigured, no model loaded; start with `ros2 lifecycle '
                f'set {self.get_fully_qualified_name()} configure`, then activate')

    # ---- lifecycle ------------------------------------------------------------------------
    def _serialize_change_state(self) -> None:
        """
        Run change_state requests one at a time; a transition the state lacks answers false.

        rclpy 9 (Kilted) answers such a request success=false; rclpy 7 (Jazzy) raises
        RCLError out of the service callback, which would end the executor's spin.
        """
        service = getattr(self, '_service_change_state', None)
        if service is None:
            return
        change_state = service.callback

        def serialized(request, response):
            with self._transitions:
                try:
                    return change_state(request, response)
                except RCLError as error:
                    self.get_logger().warning(
                        f'transition {request.transition.label or request.transition.id} '
                        f'refused in state {self.lifecycle_state()}: {error}')
                    response.success = False
                    return response
        service.callback = serialized

    def lifecycle_state(self) -> str:
        """Return the lifecycle state's label: unconfigured, inactive, active, finalized, ..."""
        return self._state_machine.current_state[1]

    def _autostart(self) -> None:
        """Configure (load the model), then activate, as `autostart` asks."""
        with self._transitions:
            try:
                configured = self.trigger_configure()
                self._autostarting = False
                if configured != TransitionCallbackReturn.SUCCESS:
                    self.get_logger().error(
                        'autostart: configure failed, the node stays unconfigured; configure '
                        f'again with `ros2 lifecycle set {self.get_fully_qualified_name()} '
                        'configure`')
                elif not self._stopping.done():
                    self.trigger_activate()
            except (RCLError, RuntimeError) as error:   # the node was destroyed meanwhile
                self._autostarting = False
                if not self._stopping.done():
                    self.get_logger().error(f'autostart: {error}')

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load the model (a served one whose server is down is tried again in the background)."""
        if self._stopping.done():
            return TransitionCallbackReturn.FAILURE
        if self._load_model():
            return TransitionCallbackReturn.SUCCESS
        return TransitionCallbackReturn.FAILURE

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().info('active: serving Ask, Describe and Observe')
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().info(
            'inactive: requests are refused until `ros2 lifecycle set '
            f'{self.get_fully_qualified_name()} activate` (the model stays loaded)')
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._free_model('cleanup')
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.stop_serving()
        self._free_model('shutdown')
        if self.exit_on_shutdown:
            self.get_logger().info('finalized: the process exits')
            threading.Timer(EXIT_AFTER_SHUTDOWN_S, rclpy.try_shutdown,
                            kwargs={'context': self.context}).start()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f'a transition from {state.label} failed: freeing the model')
        self._free_model('error')
        return TransitionCallbackReturn.SUCCESS

    def _free_model(self, why: str) -> None:
        """Drop the model (ending a served model's retries) and give its memory back."""
        self._unload.set()
        before = rss_mb()
        with self._lock:
            backend, self._backend = self._backend, None
            self._cache.clear()
        self._model_state = 'unloaded'
        name = backend.name if backend is not None else 'none loaded'
        held = weakref.ref(backend) if backend is not None else lambda: None
        del backend
        release_memory()
        deadline = time.monotonic() + FREE_WAIT_S
        while held() is not None and time.monotonic() < deadline:
            time.sleep(0.05)        # work in flight still holds it: freed when that ends
            release_memory()
        if held() is not None:
            self.get_logger().warning(f'{why}: the model is still held by work in flight; '
                                      'its memory is freed when that ends')
        after = rss_mb()
        self._last_cleanup = f'{why}: RSS {before:.0f} MB -> {after:.0f} MB'
        self.get_logger().info(f'{why}: model freed ({name}); RSS {before:.0f} MB -> '
                               f'{after:.0f} MB')

    def _refusal(self, state: str) -> str:
        """Return why a request is refused in a lifecycle state other than active."""
        name = self.get_fully_qualified_name()
        if state == 'configuring' or (state == 'unconfigured' and self._autostarting):
            return f'model is still loading ({name} is configuring)'
        if state == 'inactive':
            return (f'{name} is inactive: requests are refused until it is activated '
                    f'(ros2 lifecycle set {name} activate)')
        if state == 'unconfigured':
            if self._model_state == 'failed':
                return (f'{self._load_failure()}; {name} is unconfigured: configure it to try '
                        f'again (ros2 lifecycle set {name} configure, then activate)')
            return (f'{name} is unconfigured, no model loaded: configure and activate it '
                    f'(ros2 lifecycle set {name} configure, then ros2 lifecycle set {name} '
                    'activate)')
        if state == 'finalized':
            return f'{name} is finalized (shut down): start the node again'
        return f'{name} is {state}, not active'

    def _require_active(self) -> None:
        state = self.lifecycle_state()
        if state != 'active':
            raise RuntimeError(self._refusal(state))

    # ---- model --------------------------------------------------------------------------
    def _load_model(self) -> bool:
        """
        Load the model; return whether the node can go on (configure succeeds).

        A local model is tried once. A served model whose server does not answer is tried
        again in the background (server_retry_max_s), requests failing with the reason
        until it answers.
        """
        self._unload = unload = threading.Event()
        self._model_state, self._model_error = 'loading', ''
        self._load_attempts, self._next_load_s = 0, 0.0
        path = resolve_model(self.model_id)
        self.get_logger().info(f'loading model {path!r} on {self.device} ({self.dtype}, '
                               f'scoring in {self.runtime})')
        started = time.monotonic()
        try:
            threads = self.get_parameter('threads').value
            if threads and not is_served_spec(path):
                import torch    # deferred: heavy, and a served model runs without it
                torch.set_num_threads(threads)
            backend = make_backend(path, device=self.device, dtype=self.dtype,
                                   runtime=self.runtime, max_image_pixels=self.max_image_pixels)
        except ModelLoadError as error:
            self._fail_model(str(error))
            return False
        except Exception as error:  # noqa: B902 - anything a loader throws must not kill us
            self._fail_model(f'{type(error).__name__}: {error}')
            return False
        if self._load_once(backend):
            return self._ready(backend, started, unload)
        if (not isinstance(backend, ServedBackend) or self._stopping.done() or
                self.get_parameter('server_retry_max_s').value <= 0):
            return False
        self.get_logger().warning('configured without the model: its server is tried again '
                                  'in the background (server_retry_max_s); requests fail '
                                  'until it answers')
        threading.Thread(target=self._retry_load, args=(backend, started, unload),
                         name='vlm_load', daemon=True).start()
        return True

    def _retry_load(self, backend: VLMBackend, started: float,
                    unload: threading.Event) -> None:
        """Load a served model again with backoff until its server answers, or unload."""
        while True:
            retry_max = self.get_parameter('server_retry_max_s').value
            if retry_max <= 0:
                self._next_load_s = 0.0
                return
            wait = min(SERVER_RETRY_FIRST_S * 2 ** (self._load_attempts - 1), retry_max)
            self._next_load_s = wait
            if unload.wait(wait) or self._stopping.done():
                return
            if self._load_once(backend):
                self._ready(backend, started, unload)
                return

    def _ready(self, backend: VLMBackend, started: float, unload: threading.Event) -> bool:
        """Serve backend, unless the model was unloaded meanwhile; return whether it serves."""
        with self._lock:
            if unload.is_set():
                return False
            self._backend = backend
            self._model_state = 'ready'
        tries = f' (try {self._load_attempts})' if self._load_attempts > 1 else ''
        self.get_logger().info(f'model {backend.name!r} ready in '
                               f'{time.monotonic() - started:.1f} s{tries}')
        if isinstance(backend, ServedBackend):
            deadline = self.get_parameter('inference_timeout_s').value
            if backend.budget_s > deadline:
                self.get_logger().warning(self._budget_warning(backend, deadline))
        return True

    def _load_once(self, backend: VLMBackend) -> bool:
        """Try to load backend once; on failure record why (and log it) and return False."""
        self._load_attempts += 1
        try:
            backend.load()
            return True
        except ModelLoadError as error:
            message = str(error)
        except Exception as error:  # noqa: B902 - anything a loader throws must not kill us
            message = f'{type(error).__name__}: {error}'
        if self._load_attempts == 1 or message != self._model_error:
            self._fail_model(message)
        self._model_state = 'failed'
        return False

    def _fail_model(self, message: str) -> None:
        self._model_state = 'failed'
        self._model_error = message
        self.get_logger().error(f'model failed to load: {message}')

    def _load_failure(self) -> str:
        """Return why there is no model, and whether and when it is tried again."""
        if self._next_load_s:
            return (f'model not loaded (try {self._load_attempts}, the next within '
                    f'{self._next_load_s:g} s): {self._model_error}')
        return f'model failed to load: {self._model_error}'

    @staticmethod
    def _budget_warning(backend: ServedBackend, deadline: float) -> str:
        return (f'the model spec lets a request to {backend.base_url} take up to '
                f'{backend.budget_s:g} s (timeout x (retries + 1) + waits), more than '
                f'inference_timeout_s ({deadline:g} s): a hung server is then abandoned at the '
                'deadline and the node refuses work until it answers. Lower timeout= or '
                'retries= in the spec, or raise inference_timeout_s')

    # ---- frames ---------------------------------------------------------------------------
    def _on_image(self, msg: Image, camera: str = '') -> None:
        self._on_frame(msg, image_to_rgb, camera)

    def _on_compressed(self, msg: CompressedImage, camera: str = '') -> None:
        self._on_frame(msg, compressed_to_rgb, camera)

    def _on_frame(self, msg, convert: Callable, camera: str = '') -> None:
        try:
            rgb = convert(msg)
        except ImageError as error:
            self._reject(str(error))
            return
        self._store(Frame(Time.from_msg(msg.header.stamp), msg.header.frame_id, rgb), camera)

    def _store(self, frame: Frame, camera: str = '') -> None:
        with self._lock:
            self._frames[camera] = frame
            self._stats['frames_received'] += 1
            # which camera feeds the model, at a glance: size and frame id
            height, width = frame.rgb.shape[:2]
            self._stats['last_frame'] = f'{width}x{height} {frame.frame_id}'.strip()
            self._new_frame.notify_all()

    def _reject(self, reason: str) -> None:
        with self._lock:
            self._stats['frames_rejected'] += 1
            self._stats['last_reject_reason'] = reason
        self.get_logger().warning(f'frame skipped: {reason}', throttle_duration_sec=5.0)

    def _fresh_frame(self, newer_than_ns: int = 0, camera: str = '') -> Frame:
        """
        Return the camera's newest frame.

        With newer_than_ns (the stamp of the frame the caller already has), wait up to
        frame_wait_s for one that arrived after it. Arrival, not the stamp's value,
        decides: a camera clock stepping back must not starve callers (judging old stamps
        is the navigator's job).
        """
        wait = self.get_parameter('frame_wait_s').value

        def arrived_since() -> bool:
            frame = self._frames.get(camera)
            # Within a microsecond is the same frame: a client that kept the stamp as float
            # seconds (~1e-7 s resolution today) gets it back a few hundred ns off.
            return frame is not None and \
                abs(frame.stamp.nanoseconds - newer_than_ns) > SAME_STAMP_NS

        with self._lock:
            if newer_than_ns:
                self._new_frame.wait_for(lambda: arrived_since() or self._stopping.done(),
                                         timeout=wait)
            frame = self._frames.get(camera)
            fresh = not newer_than_ns or arrived_since()
        self._raise_if_stopping()
        if not fresh:
            raise RuntimeError(f'no frame after the requested one within {wait:.2f} s '
                               '(frame_wait_s)')
        if frame is None:
            raise RuntimeError('no camera frame received yet')
        age = time.monotonic() - frame.received
        limit = self.get_parameter('max_frame_age_s').value
        if age > limit:
            raise RuntimeError(f'newest frame is {age:.2f} s old (max_frame_age_s {limit})')
        return frame

    # ---- inference --------------------------------------------------------------------------
    def _cached_or_ready(self, key: Optional[Tuple]):
        """
        Return the answer already computed for key (frame stamp + question), else None.

        None comes back once the model can take new work; this raises if the model is not
        loaded, is still held by an abandoned inference, or the node is stopping.
        """
        self._raise_if_stopping()
        self._require_model()
        if key is not None:
            with self._lock:
                if key in self._cache:
                    self._stats['cache_hits'] += 1
                    return self._cache[key]
        self._refuse_if_abandoned()
        return None

    def _cache_put(self, key: Optional[Tuple], result) -> None:
        if key is None:
            return
        with self._lock:
            self._cache[key] = result
            while len(self._cache) > 64:
                self._cache.popitem(last=False)

    def _deadline_exceeded(self, deadline: float) -> RuntimeError:
        self._stats['deadline_exceeded'] += 1
        backend = self._backend
        if isinstance(backend, ServedBackend):
            message = (f'model server {backend.base_url} did not answer within '
                       f'inference_timeout_s ({deadline:.2f} s)')
            if backend.budget_s > deadline:
                message += (f', though the spec lets a request take up to {backend.budget_s:g} '
                            's. Fix: lower timeout= or retries= in the spec, or raise '
                            'inference_timeout_s')
        else:
            message = f'inference exceeded its deadline of {deadline:.2f} s'
        self.get_logger().error(f'{message}; answer abandoned', throttle_duration_sec=5.0)
        return RuntimeError(message)

    def _infer(self, key: Optional[Tuple], job: Callable[[VLMBackend], object]):
        """Run job on the worker with the deadline; cached by key (frame stamp + question)."""
        cached = self._cached_or_ready(key)
        if cached is not None:
            return cached, 0.0
        started = time.monotonic()
        future: Future = self._worker.submit(self._timed, job)
        with self._lock:
            self._queued += 1
        future.add_done_callback(self._job_done)
        deadline = self.get_parameter('inference_timeout_s').value
        try:
            result = self._result(future, deadline)
        except FutureTimeout:
            if not future.cancel():     # still queued: dropped; already running: abandoned
                self._abandoned = future
            raise self._deadline_exceeded(deadline)
        self._cache_put(key, result)
        return result, time.monotonic() - started

    def _infer_scores(self, key: Optional[Tuple], rgb: np.ndarray, questions: Sequence):
        """
        Score closed-set questions about one image, batched with whatever else is queued.

        The request joins the pending list and a drain job is submitted; the first drain
        the worker runs takes every pending request (up to max_batch) into one
        score_batch call, so requests that arrive while the model is busy (several
        cameras, several clients) share the next forward pass.
        """
        cached = self._cached_or_ready(key)
        if cached is not None:
            return cached, 0.0
        started = time.monotonic()
        request = ScoreRequest(rgb, questions)
        with self._lock:
            self._pending.append(request)
            self._queued += 1
        self._worker.submit(self._timed, self._drain)
        deadline = self.get_parameter('inference_timeout_s').value
        try:
            result = self._result(request.future, deadline)
        except FutureTimeout:
            with self._lock:
                dropped = request in self._pending
                if dropped:                 # never started: forget it
                    self._pending.remove(request)
                    self._queued -= 1
            if not dropped:                 # in a batch that is still running: abandoned
                self._abandoned = request.future
            raise self._deadline_exceeded(deadline)
        self._cache_put(key, result)
        return result, time.monotonic() - started

    def _result(self, future: Future, deadline: float):
        """
        Return future's result.

        Raises FutureTimeout past deadline, RuntimeError once the node stops (a service
        call in flight must not hold the shutdown).
        """
        wait_futures((future, self._stopping), timeout=deadline, return_when=FIRST_COMPLETED)
        if future.done():
            return future.result()
        self._raise_if_stopping()
        raise FutureTimeout()

    def _drain(self, backend: VLMBackend) -> None:
        """Answer the pending closed-set requests, one batch (worker side)."""
        with self._lock:
            batch = self._pending[:self.get_parameter('max_batch').value]
            del self._pending[:len(batch)]
        if not batch:
            return              # an earlier drain took them
        try:
            try:
                results = backend.score_batch([(r.rgb, r.questions) for r in batch])
            except Exception:  # noqa: B902 - one bad request must not fail the others
                if len(batch) == 1:
                    raise
                results = None
            if results is None:
                for request in batch:
                    try:
                        request.future.set_result(backend.score(request.rgb, request.questions))
                    except Exception as error:  # noqa: B902 - the request's own failure
                        request.future.set_exception(error)
            else:
                for request, result in zip(batch, results):
                    request.future.set_result(result)
        except Exception as error:  # noqa: B902 - reported to the caller, not the worker
            batch[0].future.set_exception(error)
        finally:
            with self._lock:
                self._queued -= len(batch)
                self._stats['batches'] += 1
                self._stats['batched_requests'] += len(batch)
                self._stats['largest_batch'] = max(self._stats['largest_batch'], len(batch))

    def _generate_views(self, backend: VLMBackend, budget: int,
                        images: List[np.ndarray]) -> List[str]:
        """
        Generate the describer's views: one batch, or one image at a time.

        One image at a time when answers run between decoding steps, since a waiting
        decision waits out the current step and a batch of three views' prefill is 2.3x
        one image's (48 vs 21 ms, embedded model, CPU).
        """
        if self.get_parameter('answer_during_generation').value:
            return [backend.generate(image, vocabulary.DESCRIBE_PROMPT, budget,
                                     between_steps=self._answer_waiting) for image in images]
        return backend.generate_batch(images, vocabulary.DESCRIBE_PROMPT, budget,
                                      between_steps=self._raise_if_stopping)

    def _answer_waiting(self) -> None:
        """
        Answer the closed-set requests waiting, between two decoding steps of a generation.

        Worker side, during a generation (a description, a free-text Ask): a navigator's
        Observe waits one decoding step, not a whole description. A stop ends the
        generation here.
        """
        self._raise_if_stopping()
        backend = self._backend
        if backend is not None and self._pending and \
                self.get_parameter('answer_during_generation').value:
            self._stats['answered_mid_generation'] += 1
            self._drain(backend)

    def _refuse_if_abandoned(self) -> None:
        abandoned = self._abandoned
        if abandoned is not None and not abandoned.done():
            # A thread can't be killed: while an abandoned job still holds the worker,
            # answer at once instead of queueing requests that would all time out.
            busy = time.monotonic() - (self._busy_since or time.monotonic())
            if isinstance(self._backend, ServedBackend):
                raise RuntimeError(f'model server {self._backend.base_url} has not answered '
                                   f'a request for {busy:.1f} s (abandoned at '
                                   'inference_timeout_s); requests fail until it answers or '
                                   f'times out (at most {self._backend.budget_s:g} s)')
            raise RuntimeError(f'model busy: an abandoned inference has been running for '
                               f'{busy:.1f} s')

    def _raise_if_stopping(self) -> None:
        if self._stopping.done():
            raise RuntimeError(STOPPING)

    def _job_done(self, _future: Future) -> None:
        with self._lock:
            self._queued -= 1

    def _require_model(self) -> None:
        if self._backend is None:
            if self._model_state == 'failed':
                raise RuntimeError(self._load_failure())
            raise RuntimeError('model is still loading')

    def _timed(self, job: Callable[[VLMBackend], object]):
        self._busy_since = time.monotonic()
        try:
            return job(self._backend)
        finally:
            self._busy_since = None

    def _serve(self, response, work: Callable[[], None]):
        """Run work with the common error handling: any failure -> success=false, reason."""
        try:
            self._raise_if_stopping()
            self._require_active()      # refused while not active: the state says how
            self._require_model()       # the model's state first: it's the cause to report
            work()
            response.success = True
            self._stats['requests_ok'] += 1
        except Exception as error:  # noqa: B902 - a bad request must never kill the node
            response.success = False
            response.message = str(error)
            self._stats['requests_failed'] += 1
        return response

    def _on_ask(self, request: Ask.Request, response: Ask.Response,
                camera: str = '') -> Ask.Response:
        def work():
            question = clean_text(request.question, MAX_QUESTION_CHARS, 'question')
            choices = [clean_text(c, 100, 'choice', multiline=False) for c in request.choices]
            if len(choices) > MAX_CHOICES:
                raise ValueError(f'{len(choices)} choices; the limit is {MAX_CHOICES}')
            if len(set(choices)) != len(choices):
                raise ValueError('choices must be distinct')
            # Before any frame is needed: e.g. CLIP can score but not answer in text.
            self._backend.require('score' if choices else 'ask')
            sent = bool(request.image.width or request.image.height or len(request.image.data))
            if sent:
                frame = Frame(Time.from_msg(request.image.header.stamp),
                              request.image.header.frame_id, image_to_rgb(request.image))
            else:
                frame = self._fresh_frame(camera=camera)
            budget = min(int(request.max_new_tokens or
                             self.get_parameter('max_new_tokens').value), 512)
            # Sent images are not cached: their stamps needn't be unique.
            key = None if sent else (camera, frame.stamp.nanoseconds, question,
                                     tuple(choices), budget)
            if choices:
                answers, latency = self._infer_scores(key, frame.rgb, [(question, choices)])
                result = answers[0]
            else:
                result, latency = self._infer(key, lambda backend: backend.generate(
                    frame.rgb, question, budget, between_steps=self._answer_waiting))
            if choices:
                response.scores = [float(p) for p in result.probs]
                response.answer = result.best
            else:
                response.answer = result
            response.model_name = self._backend.name
            response.latency_s = float(latency)
            response.frame_stamp = frame.stamp.to_msg()
            self._stats['last_latency_ms'] = latency * 1e3
        return self._serve(response, work)

    def _on_observe(self, request: Observe.Request, response: Observe.Response,
                    camera: str = '') -> Observe.Response:
        def work():
            self._backend.require('observe')
            target = request.target.strip()
            if target:
                target = clean_text(target, 100, 'target', multiline=False)
            frame = self._fresh_frame(Time.from_msg(request.newer_than).nanoseconds, camera)
            questions = (vocabulary.target_questions(target) if target
                         else [(vocabulary.PATH_QUESTION, vocabulary.YES_NO)])
            key = (camera, frame.stamp.nanoseconds, 'observe', target)
            answers, latency = self._infer_scores(key, frame.rgb, questions)
            obs = TargetObservation(target=target, model_name=self._backend.name,
                                    inference_latency_s=float(latency))
            obs.header.stamp = frame.stamp.to_msg()
            obs.header.frame_id = frame.frame_id
            if target:
                visible, bearing, distance, path = answers
                obs.visible_prob = float(visible.probs[0])
                obs.bearing_labels = list(bearing.choices)
                obs.bearing_probs = [float(p) for p in bearing.probs]
                obs.distance_labels = list(distance.choices)
                obs.distance_probs = [float(p) for p in distance.probs]
            else:
                path = answers[0]
            obs.path_clear_prob = float(path.probs[0])
            response.observation = obs
            self._stats['last_latency_ms'] = latency * 1e3
        return self._serve(response, work)

    def _on_describe(self, request: Describe.Request, response: Describe.Response,
                     camera: str = '') -> Describe.Response:
        def work():
            self._backend.require('describe')
            frame = self._fresh_frame(camera=camera)
            budget = min(int(request.max_new_tokens or
                             self.get_parameter('max_new_tokens').value), 512)

            def job(backend: VLMBackend):
                started = time.monotonic()
                text, objects = multiview.describe(
                    partial(self._generate_views, backend, budget), frame.rgb,
                    self.describe_views, self.describe_min_votes)
                questions = [(vocabulary.PATH_QUESTION, vocabulary.YES_NO)] + [
                    (vocabulary.visible_question(o.label), vocabulary.YES_NO) for o in objects]
                scores = backend.score(frame.rgb, questions)
                return text, objects, scores, time.monotonic() - started

            key = (camera, frame.stamp.nanoseconds, 'describe', budget)
            (text, objects, scores, _), latency = self._infer(key, job)
            response.description = self.to_scene_description(
                frame, text, objects, scores, self._backend.name, latency)
            self._stats['last_latency_ms'] = latency * 1e3
        return self._serve(response, work)

    @staticmethod
    def to_scene_description(frame: Frame, text, objects, scores, model_name,
                             latency) -> SceneDescription:
        third = vocabulary.DEFAULT_HFOV_RAD / 3.0
        angle = {'left': third, 'center': 0.0, 'right': -third}
        msg = SceneDescription(text=text, model_name=model_name,
                               inference_latency_s=float(latency))
        msg.header.stamp = frame.stamp.to_msg()
        msg.header.frame_id = frame.frame_id
        msg.path_clear = scores[0].best == 'yes'
        msg.path_clear_confidence = float(max(scores[0].probs))
        msg.objects = [DetectedObject(label=o.label, bearing=o.bearing,
                                      bearing_rad=angle[o.bearing], distance=o.distance,
                                      confidence=float(s.probs[0]))
                       for o, s in zip(objects, scores[1:])]
        return msg

    # ---- health -------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        backend = self._backend
        state = self.lifecycle_state()
        values = dict(self._stats, model=resolve_model(self.model_id),
                      model_state=self._model_state, device=self.device, dtype=self.dtype,
                      model_load_attempts=self._load_attempts, lifecycle_state=state,
                      rss_mb=f'{rss_mb():.0f}', last_cleanup=self._last_cleanup)
        if backend is not None:
            values.update(backend.diagnostics())
        served = backend if isinstance(backend, ServedBackend) else None
        server_error = served.health() if served else ''
        busy = self._busy_since
        values['busy_s'] = f'{time.monotonic() - busy:.2f}' if busy else '0'
        values['inference_queue'] = self._queued
        deadline = self.get_parameter('inference_timeout_s').value
        if self._model_state == 'failed':
            level, message = ERROR, self._load_failure()
        elif self._model_state == 'loading':
            level, message = WARN, 'model loading'
        elif busy and time.monotonic() - busy > deadline:
            level, message = ERROR, (
                f'model server {served.base_url} has not answered for '
                f'{time.monotonic() - busy:.1f} s (past inference_timeout_s)' if served else
                'inference hung past its deadline')
        elif server_error:
            level, message = ERROR, f'requests fail: {server_error}'
        elif not self._frames:
            level, message = WARN, 'no camera frames yet'
        elif served and served.budget_s > deadline:
            level, message = WARN, 'ready; ' + self._budget_warning(served, deadline)
        else:
            level, message = OK, 'ready'
        if state == 'unconfigured' or state == 'finalized':
            level, message = (ERROR if self._model_state == 'failed' else WARN,
                              self._refusal(state))
        elif state != 'active' and state != 'configuring':
            refusal = self._refusal(state)
            level, message = (level, f'{message}; {refusal}') if level == ERROR else \
                (WARN, refusal)
        self._diagnostics.publish(level, message, values)

    def stop_serving(self) -> None:
        """
        End the work of service calls in flight at once; idempotent.

        Waits for a newer frame or for an inference return, queued inference is dropped,
        a generation stops at its next decoding step; each call answers success=false.
        """
        with self._lock:
            if not self._stopping.done():
                self._stopping.set_result(None)
            self._new_frame.notify_all()
        self._unload.set()                  # a served model's load retries end
        self._worker.shutdown(wait=False, cancel_futures=True)

    def destroy_node(self):
        self.stop_serving()
        destroyed = super().destroy_node()
        # The lifecycle state machine holds the node's handle (and with it the node's DDS
        # entities) until it is destroyed; left to the garbage collector at exit, after the
        # context is shut down, that takes seconds.
        machine = getattr(self, '_state_machine', None)
        if machine is not None:
            machine.destroy_when_not_in_use()
        return destroyed


def main(args=None):
    with ros_session(args=args):
        node = VlmNode()
        node.exit_on_shutdown = True
        # Service callbacks block until their inference is done: enough threads that a
        # full batch of waiting requests never starves frame intake (an old frame) or
        # the next requests.
        threads = 4 + 2 * node.get_parameter('max_batch').value
        spin_until_shutdown([node], MultiThreadedExecutor(num_threads=threads),
                            stop=node.stop_serving)


if __name__ == '__main__':
    main()
