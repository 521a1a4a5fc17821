"""The navigation policy and the velocity limiter as plain Python (no ROS)."""

import math

import pytest

from vlm_nav.nav.limits import VelocityLimiter
from vlm_nav.nav.policy import NavigationPolicy, PolicyConfig
from vlm_nav.perception import Observation


def obs(visible=0.0, left=0.0, center=0.0, right=0.0, near=0.0, path=1.0, t=0.0):
    return Observation('red ball', t, visible, {'left': left, 'center': center, 'right': right},
                       {'near': near, 'far': 1.0 - near}, path)


def search_policy():
    policy = NavigationPolicy(PolicyConfig())
    policy.reset('search', 'red ball')
    return policy


def test_target_on_the_left_turns_left_and_on_the_right_turns_right():
    left = search_policy().decide(obs(0.95, left=0.9, center=0.1), 0.0)
    right = search_policy().decide(obs(0.95, right=0.9, center=0.1), 0.0)
    assert left.angular > 0.1 and right.angular < -0.1
    assert left.linear < 0.1 and right.linear < 0.1          # turn before driving


def test_centred_and_far_drives_forward_straight():
    d = search_policy().decide(obs(0.95, center=0.98, left=0.01, right=0.01, near=0.05), 0.0)
    assert d.linear > 0.2 and abs(d.angular) < 0.05 and d.phase == 'approaching'


def test_centred_and_near_stops_and_stays_arrived():
    policy = search_policy()
    d = policy.decide(obs(0.95, center=0.9, near=0.9), 0.0)
    assert d.arrived and d.linear == 0.0 and d.angular == 0.0
    # a later miss does not restart the search: it latched
    assert policy.decide(obs(0.0), 0.1).arrived


def test_not_visible_scans_then_relocates_after_a_full_turn():
    c = PolicyConfig(scan_angular=1.0)
    policy = NavigationPolicy(c)
    policy.reset('search', 'red ball')
    t, phases = 0.0, []
    while t < 2 * math.pi + 1.0:
        d = policy.decide(obs(0.0, path=0.9), t)
        phases.append(d.phase)
        t += 0.1
    assert phases[0] == 'scanning' and 'relocating' in phases
    assert policy.decide(obs(0.0, path=0.9), t).linear > 0.0


def test_lost_target_turns_toward_where_it_was_seen():
    policy = search_policy()
    policy.decide(obs(0.95, right=0.8, center=0.2), 0.0)
    d = policy.decide(obs(0.05), 0.5)
    assert d.phase == 'reacquiring' and d.angular < 0


def test_visibility_hysteresis():
    policy = search_policy()
    assert policy.decide(obs(0.5, center=1.0), 0.0).phase == 'scanning'   # below 0.6: not yet
    assert policy.decide(obs(0.7, center=1.0), 0.1).phase == 'approaching'
    assert policy.decide(obs(0.5, center=1.0), 0.2).phase == 'approaching'  # above 0.4: keep


def test_explore_drives_when_clear_and_turns_when_blocked():
    policy = NavigationPolicy()
    policy.reset('explore')
    assert policy.decide(obs(path=0.9), 0.0).linear > 0
    blocked = policy.decide(obs(path=0.1), 0.1)
    assert blocked.linear == 0.0 and blocked.angular != 0.0


def test_follow_holds_in_deadband_and_stops_when_near():
    policy = NavigationPolicy()
    policy.reset('follow', 'red ball')
    d = policy.decide(obs(0.9, center=0.9, left=0.06, right=0.04, near=0.1), 0.0)
    assert d.angular == 0.0 and d.linear > 0
    assert policy.decide(obs(0.9, center=0.9, near=0.9), 0.1).linear == 0.0


def test_idle_and_unknown_mode():
    policy = NavigationPolicy()
    assert policy.decide(obs(1.0, center=1.0), 0.0).linear == 0.0
    with pytest.raises(ValueError):
        policy.reset('dance')


@pytest.mark.parametrize('v, w', [(float('nan'), 0.2), (float('inf'), -float('inf')),
                                  (10.0, -10.0), (-3.0, 0.5)])
def test_limiter_output_is_finite_and_within_limits(v, w):
    limiter = VelocityLimiter(0.3, 1.0, 0.5, 2.0)
    for _ in range(100):
        lv, lw = limiter.limit(v, w, 0.05)
        assert math.isfinite(lv) and math.isfinite(lw)
        assert abs(lv) <= 0.3 and abs(lw) <= 1.0


def test_limiter_respects_acceleration_and_stops_at_once():
    limiter = VelocityLimiter(0.3, 1.0, 0.5, 2.0)
    lv, lw = limiter.limit(0.3, 1.0, 0.1)
    assert lv == pytest.approx(0.05) and lw == pytest.approx(0.2)
    assert limiter.stop() == (0.0, 0.0)


def test_original_policy_parses_substrings_like_the_original_node():
    from vlm_nav.nav.original import original_decision
    assert original_decision('search', 'red ball', 'no.').angular == 0.3
    assert original_decision('search', 'red ball', 'yes, the red ball is left and far.'
                             ).angular == 0.5
    assert original_decision('search', 'red ball', 'Yes, the red ball is right.').angular == -0.5
    assert original_decision('search', 'red ball', 'the red ball is center and far.'
                             ).linear == 0.3
    assert original_decision('search', 'red ball', 'the red ball is center and near.').arrived
    # its known weakness: "right" anywhere wins over what the answer meant
    assert original_decision('search', 'red ball', 'red ball: not left but center right now'
                             ).angular == 0.5
    assert original_decision('explore', '', 'obstacle ahead on the left').angular == -0.5
    assert original_decision('explore', '', 'the path ahead is clear.').linear == 0.4


def test_blocked_approach_creeps_then_detours_away_from_the_target_side():
    c = PolicyConfig(creep_s=1.0, detour_s=1.0)
    policy = NavigationPolicy(c)
    policy.reset('search', 'red ball')
    seen_blocked = obs(0.95, left=0.3, center=0.7, path=0.1)
    d = policy.decide(seen_blocked, 0.0)
    assert d.phase == 'creeping' and 0.0 < d.linear <= c.creep_linear
    d = policy.decide(seen_blocked, 1.2)
    assert d.phase == 'detouring' and d.linear == 0.0 and d.angular < 0   # target was left
    # keeps turning while blocked, even with the target out of view
    assert policy.decide(obs(0.0, path=0.1), 1.5).angular < 0
    d = policy.decide(obs(0.0, path=0.9), 1.8)                            # clear: drive on
    assert d.phase == 'detouring' and d.linear > 0.0 and d.angular == 0.0
    d = policy.decide(obs(0.0, path=0.9), 3.0)                            # over: look back
    assert d.phase == 'reacquiring' and d.angular > 0


def test_clear_path_to_a_seen_target_never_creeps():
    policy = search_policy()
    d = policy.decide(obs(0.95, center=0.95, left=0.05, path=0.9), 0.0)
    assert d.phase == 'approaching' and d.linear > 0.2


def test_blocked_then_clear_resets_the_creep_clock():
    c = PolicyConfig(creep_s=1.0)
    policy = NavigationPolicy(c)
    policy.reset('search', 'red ball')
    policy.decide(obs(0.95, center=0.9, left=0.1, path=0.1), 0.0)
    policy.decide(obs(0.95, center=0.9, left=0.1, path=0.9), 0.8)
    assert policy.decide(obs(0.95, center=0.9, left=0.1, path=0.1), 1.5).phase == 'creeping'
