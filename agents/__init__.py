"""DQN agent variants, a multi-seed training engine and its diagnostics."""

from agents.config import AgentConfig, ConfigError
from agents.presets import VARIANTS, Variant, get_variant

__all__ = ["AgentConfig", "ConfigError", "VARIANTS", "Variant", "get_variant"]
