"""One ticket per deliberate tap; a cap per minute protects the paper roll."""

from kiosk.guard import TapGuard


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_taps_closer_than_the_interval_are_one_tap():
    clock = FakeClock()
    guard = TapGuard(min_interval_s=1.5, per_minute=100, clock=clock)
    assert guard.allow()
    clock.now += 0.2
    assert not guard.allow()
    clock.now += 1.5
    assert guard.allow()


def test_tap_spam_is_capped_per_minute_and_recovers():
    clock = FakeClock()
    guard = TapGuard(min_interval_s=0.1, per_minute=5, clock=clock)
    allowed = 0
    for _ in range(50):
        allowed += guard.allow()
        clock.now += 1
    assert allowed == 5
    clock.now += 60
    assert guard.allow()


def test_a_tap_exactly_the_interval_after_the_last_is_a_new_tap():
    clock = FakeClock()
    guard = TapGuard(min_interval_s=1.5, per_minute=100, clock=clock)
    assert guard.allow()
    clock.now += 1.5
    assert guard.allow()


def test_a_tap_leaves_the_per_minute_count_exactly_sixty_seconds_later():
    clock = FakeClock()
    guard = TapGuard(min_interval_s=0.1, per_minute=2, clock=clock)
    assert guard.allow()  # t=0
    clock.now += 1
    assert guard.allow()  # t=1
    clock.now += 58.5
    assert not guard.allow()  # t=59.5: both still count
    clock.now += 0.5
    assert guard.allow()  # t=60: the first is a minute old and no longer counts
    clock.now += 0.5
    assert not guard.allow()  # t=60.5: the taps of t=1 and t=60 count
