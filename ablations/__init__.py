"""The ablation suite: DQN variants as pytest fixtures, stability properties as tests.

Run it with `pytest -n auto ablations`; options are listed under "ablations" in `pytest --help`.
"""
