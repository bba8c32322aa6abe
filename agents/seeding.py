"""Per-seed random streams: every source of randomness of one seed derives from that seed alone.

Seed ``s`` owns four independent streams spawned from ``numpy.random.SeedSequence(s)``:
network initialisation (a torch.Generator), exploration and replay sampling (numpy
Generators), and the seed of its training env's first reset (later resets continue the
env's own generator, as gymnasium does). Nothing reads a global RNG, so a seed trained
alone or inside a batch of any size sees exactly the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Greedy evaluation and probe states use fixed seeds shared by every agent, so all seeds and
# variants are judged on the same episodes and states.
EVAL_SEED_BASE = 1_000_000
PROBE_SEED = 2_000_000


@dataclass
class SeedStreams:
    init: torch.Generator
    explore: np.random.Generator
    replay: np.random.Generator
    env_reset_seed: int


def seed_streams(seed: int) -> SeedStreams:
    """The four random streams of one training seed."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} is invalid: must be an integer >= 0")
    init_ss, explore_ss, replay_ss, env_ss = np.random.SeedSequence(int(seed)).spawn(4)
    init = torch.Generator(device="cpu")
    init.manual_seed(int(init_ss.generate_state(1, dtype=np.uint64)[0]))
    return SeedStreams(
        init=init,
        explore=np.random.Generator(np.random.PCG64(explore_ss)),
        replay=np.random.Generator(np.random.PCG64(replay_ss)),
        env_reset_seed=int(env_ss.generate_state(1, dtype=np.uint32)[0]),
    )


def parse_seeds(text: str) -> list[int]:
    """Parse '0-9', '3', or '0,2,5-7' into a sorted list of distinct non-negative seeds."""
    seeds: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"seeds={text!r} is invalid: empty item")
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if low > high:
                    raise ValueError
                seeds.update(range(low, high + 1))
            else:
                seeds.add(int(part))
        except ValueError:
            raise ValueError(f"seeds={text!r} is invalid: use a seed, a range such as 0-9, or a comma list") from None
    if min(seeds) < 0:
        raise ValueError(f"seeds={text!r} is invalid: seeds must be >= 0")
    return sorted(seeds)
