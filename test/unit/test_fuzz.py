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
Property-based fuzzing (hypothesis) of everything that touches untrusted perception input.

Image conversion, prompt text, the observation sanity check, the policy and the velocity
limiter get arbitrary values (NaN/inf, garbage bytes, any unicode); the properties are the
safety contract: a valid frame or ImageError, clean text or ValueError, a finite Twist
within limits. About 10 500 cases in all; the counts are set per test below.
"""

import math
import unicodedata

from fuzz_strategies import compressed_payloads, image_messages, INJECTIONS
from hypothesis import event, given, HealthCheck, settings, strategies as st
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from vlm_nav.nav.limits import VelocityLimiter
from vlm_nav.nav.policy import MODES, NavigationPolicy, PolicyConfig
from vlm_nav.perception.checks import observation_problem
from vlm_nav.perception.vocabulary import (BEARINGS, clean_text, DISTANCES, Observation,
                                           visible_question)
from vlm_nav.ros.image import compressed_to_rgb, image_to_rgb, ImageError

# database=None: no .hypothesis folder in the checkout; derandomize: CI runs are repeatable.
FUZZ = {'deadline': None, 'database': None, 'derandomize': True,
        'suppress_health_check': [HealthCheck.too_slow, HealthCheck.data_too_large]}

# Examples per property; together >= 10 000 (checked below).
COUNTS = {'image': 3000, 'compressed': 1500, 'text': 2500, 'injection': 300,
          'observation': 1200, 'policy': 1000, 'limiter': 1000}

ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
# Mostly sensible values, sometimes anything: both paths get exercised.
PROB = st.one_of(st.floats(0.0, 1.0), ANY_FLOAT)


def _valid_rgb(out, height=None, width=None) -> None:
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8
    assert out.ndim == 3 and out.shape[2] == 3 and out.shape[0] > 0 and out.shape[1] > 0
    if height is not None:
        assert out.shape[:2] == (height, width)


# ---- sensor_msgs/Image -------------------------------------------------------------------
@settings(max_examples=COUNTS['image'], **FUZZ)
@given(image_messages())
def test_image_to_rgb_gives_a_valid_frame_or_image_error(msg):
    try:
        out = image_to_rgb(msg)
    except ImageError as error:
        assert str(error)
        event('ImageError')
        return
    event('converted')
    _valid_rgb(out, msg.height, msg.width)


# ---- sensor_msgs/CompressedImage -------------------------------------------------------------
@settings(max_examples=COUNTS['compressed'], **FUZZ)
@given(compressed_payloads(), st.one_of(st.sampled_from(['jpeg', 'png', 'rgb8; jpeg']),
                                        st.text(max_size=12)))
def test_compressed_to_rgb_gives_a_valid_frame_or_image_error(data, fmt):
    try:
        out = compressed_to_rgb(CompressedImage(format=fmt, data=data))
    except ImageError as error:
        assert str(error)
        event('ImageError')
        return
    event('decoded')
    _valid_rgb(out)


# ---- prompt text -----------------------------------------------------------------------------
def _is_refused_char(c: str, multiline: bool) -> bool:
    if multiline and c in '\t\n':
        return False
    return unicodedata.category(c) in ('Cc', 'Cf', 'Cs', 'Co', 'Cn', 'Zl', 'Zp')


text_inputs = st.one_of(
    st.text(max_size=150),
    st.text(alphabet=st.characters(codec='utf-8'), max_size=40),
    st.lists(st.sampled_from(INJECTIONS + ['red ball', ' ', '\n', '\t', 'é', '☕']),
             max_size=6).map(''.join))


@settings(max_examples=COUNTS['text'], **FUZZ)
@given(text_inputs, st.integers(1, 120), st.booleans())
def test_clean_text_returns_safe_text_or_value_error(text, limit, multiline):
    try:
        out = clean_text(text, limit, 'target', multiline=multiline)
    except ValueError as error:
        assert str(error).startswith('target ')
        return
    assert out and out == out.strip() and len(out) <= limit
    assert not any(_is_refused_char(c, multiline) for c in out), repr(out)
    # No chat-template markup survives: user text can't open or close a turn.
    for marker in ('<image>', '</s>', '<s>', '<|', '<end_of_utterance>'):
        assert marker not in out
    assert out in text


@settings(max_examples=COUNTS['injection'], **FUZZ)
@given(st.text(max_size=12), st.sampled_from(INJECTIONS), st.text(max_size=12))
def test_injection_markup_and_invisible_characters_are_refused(before, injection, after):
    text = before + injection + after
    stripped = text.strip()
    markup = any(m in stripped for m in ('<image>', '</s>', '<s>', '<|', '<end_of_utterance>'))
    invisible = any(_is_refused_char(c, False) for c in stripped)
    if markup or invisible:
        with pytest.raises(ValueError):
            clean_text(text, 100, 'target', multiline=False)
    else:
        try:
            assert visible_question(clean_text(text, 100, 'target', multiline=False))
        except ValueError:
            pass                        # refused for another reason (length, ...)


# ---- observations, policy and limiter -------------------------------------------------------
UNIT4 = st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4)
ANY4 = st.lists(PROB, min_size=4, max_size=4)
KEYS = {labels: st.one_of(st.just(list(labels)), st.lists(
    st.one_of(st.sampled_from(labels), st.text(max_size=5)), max_size=4, unique=True))
    for labels in (BEARINGS, DISTANCES)}
STAMP = st.one_of(st.floats(0.0, 10.0), ANY_FLOAT)


@st.composite
def observations(draw) -> Observation:
    def probs(labels):
        keys = draw(KEYS[labels])
        if draw(st.booleans()):       # a proper distribution, as the vlm_node sends
            raw = draw(UNIT4)[:len(keys)]
            total = sum(raw) or 1.0
            return {k: v / total for k, v in zip(keys, raw)}
        return dict(zip(keys, draw(ANY4)))
    return Observation(target='red ball', stamp_s=draw(STAMP), visible_prob=draw(PROB),
                       bearing_probs=probs(BEARINGS), distance_probs=probs(DISTANCES),
                       path_clear_prob=draw(PROB))


@settings(max_examples=COUNTS['observation'], **FUZZ)
@given(observations(), ANY_FLOAT)
def test_observation_check_passes_only_usable_probabilities(obs, now):
    problem = observation_problem(obs, now, 0.2)
    if problem:
        assert isinstance(problem, str)
        return
    values = [obs.visible_prob, obs.path_clear_prob, *obs.bearing_probs.values(),
              *obs.distance_probs.values()]
    assert all(math.isfinite(v) and -1e-3 <= v <= 1.0 + 1e-3 for v in values)
    assert set(obs.bearing_probs) <= set(BEARINGS)
    assert set(obs.distance_probs) <= set(DISTANCES)
    assert math.isfinite(obs.stamp_s) and obs.stamp_s <= now + 0.2
    # What passes the check gives the policy nothing to turn into NaN.
    policy = NavigationPolicy()
    policy.reset('search', 'red ball')
    d = policy.decide(obs, now)
    assert math.isfinite(d.linear) and math.isfinite(d.angular)


config_values = st.fixed_dictionaries({
    'max_linear': st.floats(0.0, 2.0), 'max_angular': st.floats(0.0, 5.0),
    'turn_gain': st.floats(0.0, 10.0), 'visible_threshold': st.floats(0.0, 1.0),
    'lost_threshold': st.floats(0.0, 1.0), 'near_threshold': st.floats(0.0, 1.0),
    'center_threshold': st.floats(0.0, 1.0), 'blocked_threshold': st.floats(0.0, 1.0),
    'scan_angular': st.floats(0.0, 5.0), 'lost_memory_s': st.floats(0.0, 60.0),
    'relocate_s': st.floats(0.0, 60.0), 'explore_linear': st.floats(0.0, 2.0),
    'hfov_rad': st.floats(math.radians(10.0), math.radians(180.0))})


@settings(max_examples=COUNTS['policy'], **FUZZ)
@given(config_values, st.sampled_from(MODES), st.floats(0.01, 10.0), st.floats(0.01, 20.0),
       st.lists(st.tuples(observations(), st.one_of(st.floats(0.0, 1.0), ANY_FLOAT)),
                min_size=1, max_size=5))
def test_policy_through_the_limiter_is_finite_and_within_limits(config, mode, accel_v,
                                                                accel_w, steps):
    """Even observations the check would refuse: the limiter is the last line of defence."""
    policy = NavigationPolicy(PolicyConfig(**config))
    policy.reset(mode, 'red ball')
    limiter = VelocityLimiter(config['max_linear'], config['max_angular'], accel_v, accel_w)
    now = 0.0
    for obs, dt in steps:
        now = now + dt if math.isfinite(dt) else dt
        decision = policy.decide(obs, now)
        assert isinstance(decision.reason, str) and decision.phase
        v, w = limiter.limit(decision.linear, decision.angular, dt)
        assert math.isfinite(v) and math.isfinite(w)
        assert abs(v) <= config['max_linear'] and abs(w) <= config['max_angular']


@settings(max_examples=COUNTS['limiter'], **FUZZ)
@given(st.floats(0.0, 2.0), st.floats(0.0, 5.0), st.floats(0.0, 10.0), st.floats(0.0, 20.0),
       st.lists(st.tuples(ANY_FLOAT, ANY_FLOAT, ANY_FLOAT), min_size=1, max_size=20))
def test_limiter_output_is_finite_bounded_and_acceleration_limited(max_v, max_w, acc_v, acc_w,
                                                                   commands):
    limiter = VelocityLimiter(max_v, max_w, acc_v, acc_w)
    last_v, last_w = 0.0, 0.0
    for linear, angular, dt in commands:
        v, w = limiter.limit(linear, angular, dt)
        assert math.isfinite(v) and math.isfinite(w)
        assert abs(v) <= max_v and abs(w) <= max_w
        # NaN, inf or negative dt counts as no time passed: no change at all.
        elapsed = dt if math.isfinite(dt) and dt > 0.0 else 0.0
        assert abs(v - last_v) <= acc_v * elapsed * (1 + 1e-9) + 1e-12
        assert abs(w - last_w) <= acc_w * elapsed * (1 + 1e-9) + 1e-12
        last_v, last_w = v, w
    assert limiter.stop() == (0.0, 0.0)


def test_case_count_is_at_least_ten_thousand():
    """The issue asks for >= 10 000 fuzz cases in all (the ROS-level fuzz adds more)."""
    assert sum(COUNTS.values()) >= 10_000
