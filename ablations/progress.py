"""Progress lines of a long session: what each worker trains, how far it is, and each look of
seeds on demand. Whole lines only, so the workers' lines never break into each other's.

A standard session trains for an hour or more after pytest's "2 workers [n items]" line and
says nothing until the first test reports; these lines say what is training and when it
should end. They are written past pytest's output capture (`uncaptured_writer`): an xdist
worker's stderr is the terminal's.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

# A line at every tenth of a batch's env steps, but at most one a minute: a few lines per batch
# at the standard profile, none in between for a batch of seconds.
PROGRESS_STEPS = 10
QUIET_SECONDS = 60.0


def duration(seconds: float) -> str:
    """h:mm:ss, or m:ss under an hour."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def seed_ranges(seeds: list[int]) -> str:
    """0-19 or 0-4,7: the seeds as ranges (as `agents train --seeds` reads them)."""
    parts, ordered = [], sorted(seeds)
    start = previous = ordered[0]
    for seed in [*ordered[1:], None]:
        if seed is not None and seed == previous + 1:
            previous = seed
            continue
        parts.append(f"{start}" if start == previous else f"{start}-{previous}")
        if seed is not None:
            start = previous = seed
    return ",".join(parts)


class TrainingProgress:
    """The progress callback of one training batch (agents.engine.loop.train_family's `progress`):
    a line when it starts (naming what it trains), one at each PROGRESS_STEPS-th of its env
    steps, QUIET_SECONDS apart at least, with the time left at the rate so far, and one when it
    ends."""

    def __init__(
        self,
        write: Callable[[str], None],
        label: str,
        detail: str,
        env_steps: int,
        agents: int,
        clock: Callable[[], float] = time.monotonic,
    ):
        if env_steps < 1 or agents < 1:
            raise ValueError(f"env_steps={env_steps}, agents={agents} are invalid: both must be >= 1")
        self.write, self.label, self.env_steps, self.agents, self.clock = write, label, env_steps, agents, clock
        self.done = 0
        self.started = self.last_line = clock()
        self.next_tenth = 1
        write(f"training {label}: {detail}")

    def __call__(self, steps: int) -> None:
        self.done += steps
        if self.done * PROGRESS_STEPS < self.next_tenth * self.env_steps or self.done >= self.env_steps:
            return
        self.next_tenth = self.done * PROGRESS_STEPS // self.env_steps + 1
        now = self.clock()
        if now - self.last_line < QUIET_SECONDS:
            return
        self.last_line = now
        elapsed = now - self.started
        left = elapsed * (self.env_steps - self.done) / self.done  # at the rate so far
        share = 100 * self.done // self.env_steps
        self.write(f"{share}% of {self.label} after {duration(elapsed)}, about {duration(left)} left")

    def finish(self) -> None:
        elapsed = self.clock() - self.started
        rate = f" ({self.agents * self.done / elapsed:,.0f} agent-steps/s)" if elapsed > 0 and self.done else ""
        self.write(f"trained {self.label} in {duration(elapsed)}{rate}")


def uncaptured_writer(
    prefix: str, uncaptured: Callable[[], AbstractContextManager] = nullcontext, stream=None
) -> Callable[[str], None]:
    """A writer of whole lines to stderr past pytest's capture (`uncaptured`: the capture
    manager's global_and_fixture_disabled), each line led by the prefix."""

    def write(line: str) -> None:
        with uncaptured():
            out = stream or sys.stderr
            out.write(f"{prefix} {line}\n")
            out.flush()

    return write
