"""The operator's posting cadence, on a scripted clock."""

import pytest

from isoperp.service.cadence import CADENCE_TICK_S, Cadence
from isoperp.service.operator import CycleReport


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


POSTED = CycleReport(posted=object())  # type: ignore[arg-type]
IDLE = CycleReport()
DEFERRED = CycleReport(deferred=True)


def test_plain_interval_posts_every_cycle_and_sleeps_t():
    cadence = Cadence(5.0, clock=Clock())
    for report in (IDLE, POSTED, DEFERRED):
        plan = cadence.plan()
        assert plan.due and plan.min_fills == 0 and not plan.post_empty
        cadence.record(report)
    assert cadence.tick == 5.0 and cadence.describe() == "every 5s"


def test_fills_cadence_waits_for_n_fills_until_t_after_the_batch_opened():
    clock = Clock()
    cadence = Cadence(5.0, batch_fills=3, clock=clock)
    assert cadence.tick == CADENCE_TICK_S and cadence.describe() == "every 5s or 3 fills"
    assert cadence.plan().due  # the first cycle after a start
    cadence.record(IDLE)
    clock.now += 60  # idle for long: nothing is due, the batch has not opened
    assert cadence.plan().min_fills == 3
    cadence.record(DEFERRED)  # work arrived, fewer than 3 fills: the batch opens now
    clock.now += 4.9
    assert not cadence.plan().due
    cadence.record(DEFERRED)
    clock.now += 0.1
    plan = cadence.plan()
    assert plan.due and plan.min_fills == 0  # T after it opened: post whatever it holds
    cadence.record(POSTED)
    assert cadence.plan().min_fills == 3  # a new batch


def test_fills_cadence_with_post_empty_still_posts_every_t_when_idle():
    clock = Clock()
    cadence = Cadence(5.0, batch_fills=3, post_empty=True, clock=clock)
    cadence.record(POSTED)
    clock.now += 4
    assert not cadence.plan().post_empty
    clock.now += 1
    plan = cadence.plan()
    assert plan.due and plan.post_empty


@pytest.mark.parametrize(("interval", "fills"), [(0.0, None), (-1.0, None), (1.0, 0)])
def test_bad_cadence_refused(interval, fills):
    with pytest.raises(ValueError):
        Cadence(interval, fills)
