"""A guard for newcomers adding a knob: every AgentConfig field must reach both the batched
engine (as a family field or a per-seed knob) and the readable reference DQN."""

import dataclasses
import inspect
import re

import pytest

import agents.engine.family
import agents.textbook.reference
from agents.config import AgentConfig

FIELDS = [f.name for f in dataclasses.fields(AgentConfig)]
# Fields the reference DQN does not read, each for a reason: it trains for the caller's
# `steps` and never evaluates or records (the recorder's job), and it runs on the CPU only.
NOT_TRAINING_ARITHMETIC = {"total_env_steps", "eval_period", "eval_episodes", "diagnostic_window", "device"}


@pytest.mark.parametrize("field", FIELDS)
def test_every_field_is_a_family_field_or_a_seed_knob(field):
    knobs = inspect.getsource(agents.engine.family.SeedKnobs)
    assert field in agents.engine.family.FAMILY_FIELDS or re.search(rf"\bc\.{field}\b", knobs), (
        f"AgentConfig.{field} is neither in FAMILY_FIELDS nor read by SeedKnobs.of: the batched engine "
        "would train every seed of a mixed family with the first member's value"
    )


@pytest.mark.parametrize("field", sorted(set(FIELDS) - NOT_TRAINING_ARITHMETIC))
def test_every_training_field_is_read_by_the_reference_dqn(field):
    assert re.search(rf"\bconfig\.{field}\b", inspect.getsource(agents.textbook.reference)), (
        f"AgentConfig.{field} is not read by agents/textbook/reference.py: the differential tests cannot check it"
    )


def test_the_exemptions_are_real_fields():
    assert NOT_TRAINING_ARITHMETIC <= set(FIELDS)
