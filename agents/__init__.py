"""DQN agents: configs (config.py), the batched multi-seed engine (engine/), the textbook DQN it is
checked against (textbook/), catalogues of presets and bugs (catalogue/), config-side diagnosis
(diagnosis/) and importers of other libraries' configs (importers/).

Kept empty of imports: importing the engine executes this file, and what it executes is the
cache key (agents/results.py), so nothing beyond the engine's own boundary may load here.
"""
