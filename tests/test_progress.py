"""Progress lines of long sessions: exact lines on a fake clock, and the cache's lines."""

from pathlib import Path

import pytest

from ablations.progress import TrainingProgress, duration, seed_ranges, uncaptured_writer
from ablations.runs.cache import RunCache
from ablations.settings import AblationSettings


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_duration_and_seed_ranges_on_exact_cases():
    assert [duration(s) for s in (0, 59.4, 61, 3599, 3600, 5 * 3600 + 7)] == [
        "0:00", "0:59", "1:01", "59:59", "1:00:00", "5:00:07"
    ]
    assert seed_ranges([3]) == "3"
    assert seed_ranges(list(range(20))) == "0-19"
    assert seed_ranges([7, 0, 1, 2, 3, 4]) == "0-4,7"
    assert seed_ranges([1, 3, 5, 6]) == "1,3,5-6"


def test_a_line_at_start_each_tenth_and_end_with_the_time_left_at_the_rate_so_far():
    lines, clock = [], FakeClock()
    progress = TrainingProgress(lines.append, "40 agents", "a seeds 0-19, b seeds 0-19", 1000, 40, clock)
    for _ in range(1000):
        clock.now += 0.5  # 0.5 s per env step of all 40 agents: a tenth is 50 s, under a minute
        progress(1)
    progress.finish()
    assert lines[0] == "training 40 agents: a seeds 0-19, b seeds 0-19"
    # 10% comes 50 s in, too soon after the start; then every tenth at least a minute apart.
    assert lines[1] == "20% of 40 agents after 1:40, about 6:40 left"
    assert lines[2] == "40% of 40 agents after 3:20, about 5:00 left"
    assert len(lines) == 6  # start, 20%, 40%, 60%, 80%, end: no line at 100% besides the end
    assert lines[-1] == "trained 40 agents in 8:20 (80 agent-steps/s)"


def test_uneven_steps_give_one_line_per_tenth_crossed_and_bad_sizes_are_refused():
    lines, clock = [], FakeClock()
    progress = TrainingProgress(lines.append, "x", "", env_steps=100, agents=1, clock=clock)
    clock.now += 100
    progress(35)  # crosses 10%, 20% and 30% at once: one line, and the next at 40%
    clock.now += 100
    progress(4)
    progress(1)
    assert [line.split(" after")[0] for line in lines[1:]] == ["35% of x", "40% of x"]
    # A short batch says only when it starts and ends.
    short = []
    quick = TrainingProgress(short.append, "y", "", env_steps=100, agents=1, clock=FakeClock())
    for _ in range(100):
        quick(1)
    quick.finish()
    assert short == ["training y: ", "trained y in 0:00"]
    with pytest.raises(ValueError, match="env_steps=0"):
        TrainingProgress(lines.append, "x", "", env_steps=0, agents=1)


def test_the_writer_prefixes_whole_lines_inside_the_uncapture_context():
    entered = []

    class Uncaptured:
        def __enter__(self):
            entered.append(True)

        def __exit__(self, *exc):
            return False

    written = []

    class Stream:
        def write(self, text):
            written.append((len(entered), text))

        def flush(self):
            pass

    uncaptured_writer("[ablations gw1]", Uncaptured, Stream())("training x")
    assert written == [(1, "[ablations gw1] training x\n")]


def test_the_cache_reports_what_each_batch_trains(tmp_path: Path):
    settings = AblationSettings(
        profile="test", seeds=(0, 1, 2), env_steps=200, env_id="CartPole-v1", out_dir=tmp_path / "out",
        cache_dir=tmp_path / "cache", rerun=False, write_report=False, session_id="s",
    )
    lines = []
    cache = RunCache(settings, report=lines.append)
    cache.prefetch(["article-naive", "naive-masked"], None)
    assert lines[0] == "training 6 agents x 200 env steps: article-naive seeds 0-2, naive-masked seeds 0-2"
    assert len(lines) == 2 and lines[1].startswith("trained 6 agents x 200 env steps in ")
    # Served from the cache: nothing trains, nothing is said.
    again = []
    RunCache(settings, report=again.append).prefetch(["article-naive", "naive-masked"], None)
    assert again == []
