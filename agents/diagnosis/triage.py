"""Triage: which rungs of the one-knob ladder to train first, from lint findings and symptoms.

A pure function of what is known before the ladder trains: the base's lint findings (agents/diagnosis/lint.py,
already ordered by class) and, optionally, the names of the symptoms its runs show
(reports/diagnosis/symptoms.py). Each lint rule and symptom maps to the rungs that would fix it, the likeliest
first; the order of the whole list is: rungs for findings that make training pointless or break the
values, then rungs for the symptoms the runs show (evidence from the runs outranks a secondary
suspicion from the config), then rungs for secondary findings. The diagnosis trains these first; the
rest of the ladder follows or not.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents.diagnosis.lint import SECONDARY, TYPICAL_LEARNING_RATES, Finding

# Rungs (agents/diagnosis/ladder.py keys) that change what each rule flags, the likeliest fix first. Where
# the same rule flags different fields or directions, RULE_RUNGS_BY_FIELD or _rungs_for decides.
RULE_RUNGS: dict[str, tuple[str, ...]] = {
    "short-budget": ("steps-x4",),
    "never-synced": ("sync-x0.01", "sync-x0.1", "sync-x0.3"),
    "target-barely-moves": ("tau-x100", "tau-x10"),
    "random-behaviour": ("eps-decay",),
    "decay-beyond-run": ("eps-constant",),
    "few-updates": ("train-every-x0.25", "grad-steps-x4"),
    "many-updates": ("grad-steps-x0.25", "train-every-x4"),
    "update-gap": ("train-every-x0.25", "burst-x0.25"),
    "update-burst": ("burst-x0.25", "grad-steps-x0.25"),
    # Exploration on a sparse reward: no rung fixes it; these give epsilon-greedy more chances.
    "sparse-exploration": ("eps-decay", "steps-x4"),
    "bug-unmasked-terminals": ("terminal-masking",),
    "bug-time-limit-terminal": ("bootstrap-on-truncation",),
    "no-stabiliser": ("replay", "target"),
    "no-target": ("target",),
    "short-horizon": ("gamma-0.99", "gamma-0.9"),
    "no-discount": ("gamma-0.99",),
    "small-batch": ("batch-x4", "batch-x2"),
    "small-network": ("width-256",),
    # No rung changes these fields (replay_capacity, n_step, eval_episodes): nothing to train first.
    "small-buffer": (),
    "long-n-step": (),
    "no-evaluation": (),
}
# no-update flags learning_starts or env_steps_per_update; each has its own rung.
NO_UPDATE_RUNGS = {"learning_starts": ("early-start",), "env_steps_per_update": ("train-every-x0.25",)}
# A learning rate far outside the typical range moves back toward it.
LR_TOO_LARGE = ("lr-x0.01", "lr-x0.1")
LR_TOO_SMALL = ("lr-x10", "lr-x3")
# Symptoms (reports/diagnosis/symptoms.py names) to the rungs that address them: divergence and exploding
# gradients by the stabilisers Mnih et al. 2015 used (a target network, error clipping) and smaller
# steps; a collapse by smaller steps and larger batches; a constant greedy policy by exploration
# and a longer run.
SYMPTOM_RUNGS: dict[str, tuple[str, ...]] = {
    "no-update": ("early-start", "train-every-x0.25"),
    "random-behaviour": ("eps-decay",),
    "constant-greedy-policy": ("eps-decay", "steps-x4"),
    "hard-divergence": ("target", "lr-x0.1", "huber", "clip", "terminal-masking", "gamma-0.9"),
    "soft-divergence": ("target", "terminal-masking", "lr-x0.1", "double-q", "huber", "gamma-0.9"),
    "exploding-gradients": ("clip", "huber", "lr-x0.1"),
    "learned-then-collapsed": ("lr-x0.3", "lr-x0.1", "batch-x4", "clip"),
}


def _as_dict(finding: Finding | dict) -> dict:
    return finding.to_dict() if isinstance(finding, Finding) else finding


def _rungs_for(finding: dict) -> tuple[str, ...]:
    rule = finding["rule"]
    if rule == "no-update":
        return NO_UPDATE_RUNGS.get(finding["field"], ())
    if rule == "learning-rate":
        # The recorded value is its repr (Finding.to_dict): a float's repr reads back as the float.
        return LR_TOO_LARGE if float(finding["value"]) > TYPICAL_LEARNING_RATES[1] else LR_TOO_SMALL
    if rule.startswith("bug-") and rule not in RULE_RUNGS:
        return (f"no-{rule}",)  # the ladder's rung switching off a catalogued bug_ switch
    return RULE_RUNGS.get(rule, ())


def triage(
    findings: Iterable[Finding | dict], symptoms: Iterable[str] = (), available: Iterable[str] | None = None
) -> list[str]:
    """The rung keys that would fix the findings (Finding or its to_dict, in lint's order) and the
    symptoms (names), in priority order, each once; only those in `available` (the ladder's keys)
    when given. Unknown symptom names are an error: a typo would silently drop its rungs."""
    findings = [_as_dict(finding) for finding in findings]
    symptoms = list(symptoms)
    unknown = [name for name in symptoms if name not in SYMPTOM_RUNGS]
    if unknown:
        raise ValueError(f"symptoms={unknown[0]!r} is invalid: one of {', '.join(SYMPTOM_RUNGS)}")
    # A finding recorded before order classes existed counts as secondary.
    first = [f for f in findings if f.get("order", SECONDARY) < SECONDARY]
    last = [f for f in findings if f.get("order", SECONDARY) >= SECONDARY]
    ordered = [
        *(key for finding in first for key in _rungs_for(finding)),
        *(key for name in symptoms for key in SYMPTOM_RUNGS[name]),
        *(key for finding in last for key in _rungs_for(finding)),
    ]
    keep = None if available is None else set(available)
    return [key for i, key in enumerate(ordered) if key not in ordered[:i] and (keep is None or key in keep)]
