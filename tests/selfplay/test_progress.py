"""Progress a user sees in a log: a plain line per long stage when stderr is not a terminal."""

import functools
import io
import logging
from types import SimpleNamespace

from selfplay.compute.work import LogProgress, progress_bar


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_line_at_most_every_interval_with_done_total_rate_and_eta():
    clock, out = Clock(), io.StringIO()
    with LogProgress(120, "round 1 solve", every=30, stream=out, clock=clock) as bar:
        for _ in range(10):  # 10 s: a short stage says nothing
            clock.now += 1
            bar.update(1)
        assert out.getvalue() == ""
        for _ in range(50):  # to 60 s: two lines, at 30 s and 60 s
            clock.now += 1
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert lines == ["round 1 solve: 30/120 (25%) after 30s, 1/s, ETA 1m30s",
                     "round 1 solve: 60/120 (50%) after 1m00s, 1/s, ETA 1m00s"]


def test_a_stage_without_a_terminal_gets_log_lines(tmp_path):
    log = logging.getLogger("test_progress")
    ctx = SimpleNamespace(round=2, progress=False, log=log)
    bar = progress_bar(ctx, 10, "propose")
    assert isinstance(bar, LogProgress) and bar.desc == "round 2 propose" and bar.log is log
    assert not isinstance(progress_bar(SimpleNamespace(round=2, progress=True, log=log), 10,
                                       "propose"), LogProgress)


def test_training_steps_are_logged_without_a_terminal(monkeypatch):
    from selfplay.compute import work as common
    clock, out, seen = Clock(), io.StringIO(), []
    monkeypatch.setattr(common, "LogProgress", functools.partial(LogProgress, clock=clock,
                                                                stream=out))
    ctx = SimpleNamespace(round=1, progress=False, log=logging.getLogger("test_progress"))
    step = common.log_steps(ctx, "train", seen.append)
    for s in range(1, 5):
        clock.now += 20
        step(SimpleNamespace(step=s, total=8))
    assert len(seen) == 4  # the tracker's callback still gets every step
    assert out.getvalue().splitlines() == [
        "round 1 train: 2/8 (25%) after 40s, 0.05/s, ETA 2m00s",
        "round 1 train: 4/8 (50%) after 1m20s, 0.05/s, ETA 1m20s"]
    on_a_terminal = SimpleNamespace(round=1, progress=True, log=ctx.log)
    assert common.log_steps(on_a_terminal, "train", seen.append) == seen.append
