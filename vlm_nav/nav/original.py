"""The original design's navigation, kept as the baseline the package is measured against.

It asked a free-text question, generated up to 50 (search) or 150 (explore) tokens and
searched the lower-cased answer for words: the target's name, then 'left' / 'right' /
'center' and 'near'; 'obstacle' / 'blocked' / 'clear' when exploring. Turns were
±0.5 rad/s, forward 0.3 m/s (0.4 exploring), and 0.3 rad/s rotation while searching.
Reimplemented from its description, not copied; plain Python, no ROS.
"""

from vlm_nav.nav.policy import Decision
from vlm_nav.perception import (ORIGINAL_EXPLORE_PROMPT, ORIGINAL_EXPLORE_TOKENS,
                                ORIGINAL_SEARCH_TOKENS, original_search_question)


def original_prompt(mode: str, target: str):
    """(prompt, max_new_tokens) the original design used in this mode."""
    if mode == 'explore':
        return ORIGINAL_EXPLORE_PROMPT, ORIGINAL_EXPLORE_TOKENS
    return original_search_question(target), ORIGINAL_SEARCH_TOKENS


def original_decision(mode: str, target: str, answer: str) -> Decision:
    """Substring matching exactly as the original node did it."""
    response = answer.lower()
    quoted = f'answer {answer.strip()[:80]!r}'
    if mode == 'explore':
        if 'obstacle' in response or 'blocked' in response:
            angular = -0.5 if 'left' in response else 0.5
            return Decision(0.0, angular, 'avoiding', quoted)
        if 'clear' in response:
            return Decision(0.4, 0.0, 'cruising', quoted)
        return Decision(0.0, 0.0, 'waiting', quoted)
    if target.lower() in response:
        if 'left' in response:
            return Decision(0.0, 0.5, 'turning', quoted)
        if 'right' in response:
            return Decision(0.0, -0.5, 'turning', quoted)
        if 'center' in response:
            if 'near' in response:
                return Decision(0.0, 0.0, 'arrived', quoted, arrived=True)
            return Decision(0.3, 0.0, 'approaching', quoted)
        return Decision(0.0, 0.0, 'waiting', quoted)   # the original published a zero Twist
    return Decision(0.0, 0.3, 'scanning', quoted)
