import importlib.util

import pandas.io.parquet
import pytest
import torch

# One torch thread per (xdist worker) process: the suite's tensors are small, and threads
# would only contend for the machine's cores.
torch.set_num_threads(1)

# pytester restores sys.modules after each of its tests, dropping modules first imported
# inside the test; pandas' parquet engine registers pyarrow extension types on import and
# fails when imported a second time. Importing it here keeps it out of any snapshot.
pandas.io.parquet.get_engine("pyarrow")

# LunarLander-v3 needs Box2D (pip install "dqn-ablations[box2d]"; CI and nox install it).
NEEDS_BOX2D = pytest.mark.skipif(importlib.util.find_spec("Box2D") is None, reason="LunarLander-v3 needs Box2D")

# Fixtures that start processes (pytester sessions, a local Ray cluster, a pip install): a test
# using one belongs to the integration tier, and forgetting the marker is a collection error.
PROCESS_FIXTURES = {"pytester", "local_ray", "installed", "user_dir"}


def pytest_collection_modifyitems(items):
    unmarked = [
        item.nodeid
        for item in items
        if PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("integration") is None
    ]
    if unmarked:
        raise pytest.UsageError(f"these tests start processes but lack @pytest.mark.integration: {unmarked}")
