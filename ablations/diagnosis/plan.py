"""What a diagnosis trains, in which stage, and how its verdicts are controlled: built once, by
`build_plan`, and used by both the `diagnose` command (what it prints and which sessions it runs)
and the pytest session (which variants it trains and which families it settles).

Stages. Stage 0 trains the base at the config's own budget (or, when the profile cannot afford
it, at the affordable prefix, said on the first screen), and beside it the rungs of the findings
that make training pointless or break the values (`early`: they lead any triage order). The
base's lint findings and symptoms then order the ladder (agents/diagnosis/triage.py): stage 1
settles the first TRIAGE_SIZE of that order, stage 2 the rest of the ladder. `diagnose` stops after
stage 1 when a change settled as helping there, unless --thorough; a plan never triaged (pytest
run directly) has the whole ladder in stage 1.

Error control. The rungs form two families fixed by the config alone, before anything trains:
the rungs lint points at ("flagged"), and the rest ("other"). The family-wise error rate alpha is
split between them (Bonferroni across the two families, alpha / 2 each when both have members;
weighted Bonferroni, Holm 1979 within each), and each is settled by the claims' procedure (Holm
over both directions of every member, O'Brien-Fleming looks for seeds on demand:
ablations/claims/article.py) at its share. In a stage, the members of a family not trained yet
enter its Holm step with p = 1. Holm is monotone (a larger p-value never adds a rejection), so at
each look a stage rejects a subset of what Holm over the whole family would, whichever members
the symptoms picked, and each look keeps within its share of the family's alpha. The pick reads
the base's runs, which every rung's test shares: a family of the picked rungs with an alpha of its
own would not keep the error rate (tests/test_diagnosis_plan.py shows both). Stage 2 settles each
family whole; its verdicts replace stage 1's.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from agents.config import AgentConfig
from agents.diagnosis.ladder import one_knob_ladder
from agents.diagnosis.lint import SECONDARY, lint
from agents.diagnosis.triage import triage
from agents.engine.envs import env_spec
from reports.analysis.stats import ALPHA, seeds_to_settle

# Stage 1 trains this many rungs: the likeliest fixes of what lint flags and the runs show.
TRIAGE_SIZE = 3
# The compute a profile affords for the first screen (the base and stage 1 at the first look), in
# agent-steps: the quick profile's is about 3 minutes on 2 cores at 3,000 agent-steps per
# CPU-second (docs/suite.md measures 2,200-4,000 with evaluation and diagnostics). A budget whose
# first screen costs more is diagnosed on its affordable prefix, and says so. Smoke only checks
# that a diagnosis runs (10,000 steps); standard and paper train the config's own budget.
FIRST_SCREEN_AGENT_STEPS = {"quick": 3 * 60 * 2 * 3_000}
FIXED_CAPS = {"smoke": 10_000}
# What an agent-step costs beside the network's arithmetic (the env step, replay, bookkeeping), in
# FLOP: docs/engine.md measures article-target (64x64 hidden, batch 64: 2.3 MFLOP of network per
# agent-step) spending about half its time in the batched matrix products, so the rest costs
# about as much again.
STEP_OVERHEAD_FLOP = 2.3e6
FAMILIES = ("flagged", "other")
BASE_STAGE, TRIAGE_STAGE, THOROUGH_STAGE = 0, 1, 2
PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Family:
    """A family of rungs settled together at alpha (Holm across both directions of its members)."""

    name: str
    alpha: float
    rungs: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.name not in FAMILIES:
            raise ValueError(f"name={self.name!r} is invalid: one of {', '.join(FAMILIES)}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha={self.alpha!r} is invalid: must lie in (0, 1)")


@dataclass(frozen=True)
class DiagnosisPlan:
    """A diagnosis' plan: the budget (own, affordable, trained), the seeds, the ladder's rung keys,
    the two families, and (once the base has trained) the triage order and the symptoms behind it."""

    profile: str
    env_id: str
    own_steps: int
    steps: int
    affordable_steps: int | None  # None: the profile trains any budget
    seeds: int
    max_seeds: int | None
    ladder: tuple[str, ...]
    families: tuple[Family, ...]
    triage: tuple[str, ...] | None = None  # None: not triaged, the whole ladder is stage 1
    symptoms: tuple[str, ...] = ()
    # Stage 1's rungs known before the base trains: those of the findings that make training
    # pointless or break the values come first in any triage order (agents/diagnosis/triage.py), so
    # they train beside the base in stage 0 (settled in stage 1), and no core waits for the base.
    early: tuple[str, ...] = ()
    # Each rung's estimated compute relative to the base's (ladder order; step_cost x env steps):
    # stage 1 takes the triage order's rungs while the first screen stays within its compute.
    costs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.steps > self.own_steps or self.steps < 1:
            raise ValueError(f"steps={self.steps!r} is invalid: between 1 and the config's {self.own_steps:,}")
        members = [key for family in self.families for key in family.rungs]
        if sorted(members) != sorted(self.ladder):
            raise ValueError(f"families={members!r} is invalid: every rung of the ladder in exactly one family")
        if self.triage is not None and not set(self.triage) <= set(self.ladder):
            raise ValueError(f"triage={self.triage!r} is invalid: names rungs outside the ladder")
        if self.triage is not None and self.admitted(self.triage)[: len(self.early)] != self.early:
            raise ValueError(f"early={self.early!r} is invalid: not the start of stage 1 of triage={self.triage!r}")
        if len(self.early) > TRIAGE_SIZE or not set(self.early) <= set(self.ladder):
            raise ValueError(f"early={self.early!r} is invalid: at most {TRIAGE_SIZE} rungs of the ladder")
        if self.costs and len(self.costs) != len(self.ladder):
            raise ValueError(f"costs={self.costs!r} is invalid: one per rung of the ladder")
        if sum(family.alpha for family in self.families) > ALPHA + 1e-12:
            raise ValueError(f"families' alpha sum to more than {ALPHA}")

    @property
    def shortened(self) -> bool:
        """Whether the budget trained is a prefix of the config's own."""
        return self.steps < self.own_steps

    def stage_rungs(self, stage: int) -> tuple[str, ...]:
        """The rungs stage `stage` adds (stage 0: none, the base)."""
        if stage == BASE_STAGE:
            return ()
        first = self.ladder if self.triage is None else self.admitted(self.triage)
        if stage == TRIAGE_STAGE:
            return tuple(first)
        if stage == THOROUGH_STAGE:
            return tuple(key for key in self.ladder if key not in first)
        raise ValueError(f"stage={stage!r} is invalid: 0 (base), 1 (triage) or 2 (thorough)")

    def first_screen_units(self) -> float:
        """The first screen's compute in base runs (seeds x steps of the base): the profile's compute
        over the base's, and at least the base and TRIAGE_SIZE rungs of the base's cost."""
        compute = FIRST_SCREEN_AGENT_STEPS.get(self.profile)
        least = 1.0 + TRIAGE_SIZE
        return least if compute is None else max(least, compute / (self.seeds * self.steps))

    def admitted(self, order) -> tuple[str, ...]:
        """The rungs of `order` that stage 1 trains: in order, at most TRIAGE_SIZE, each while the
        base and the rungs admitted so far fit first_screen_units; the first always (it is the
        likeliest fix), a costlier later one is left to stage 2 and the order goes on."""
        cost = dict(zip(self.ladder, self.costs)) if self.costs else {}
        units, room = [], self.first_screen_units() - 1.0
        for key in order:
            if len(units) == TRIAGE_SIZE:
                break
            need = cost.get(key, 1.0)
            if units and need > room:
                continue
            units.append(key)
            room -= need
        return tuple(units)

    def trained_through(self, stage: int) -> tuple[str, ...]:
        """The rungs trained by the end of `stage` (stage 0: the early ones), in ladder order."""
        trained = {*self.early, *(key for s in range(stage + 1) for key in self.stage_rungs(s))}
        return tuple(key for key in self.ladder if key in trained)

    def triaged(self, findings, symptom_names) -> DiagnosisPlan:
        """This plan with its triage order, from the lint findings and the base's symptoms."""
        order = triage(findings, symptom_names, self.ladder)
        return dataclasses.replace(self, triage=tuple(order), symptoms=tuple(symptom_names))

    def budget_line(self) -> str | None:
        """The first screen's caveat when the budget is beyond what the profile affords."""
        if not self.shortened:
            return None
        if self.profile in FIXED_CAPS:
            affords = f"{self.affordable_steps:,} steps per seed, its fixed cap"
        else:
            affords = (
                f"{self.affordable_steps:,} steps per seed: {FIRST_SCREEN_AGENT_STEPS[self.profile]:,} agent-steps "
                f"for the first screen over {self.seeds} seeds x {1 + TRIAGE_SIZE} variants"
            )
        return (
            f"budget: your {self.own_steps:,} env steps are beyond what the {self.profile} profile affords "
            f"({affords}); diagnosing the first {self.steps:,} steps: a cause named is a cause of that prefix, "
            "and a run that would learn later reads as failing (--profile standard trains the whole budget)"
        )

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> DiagnosisPlan:
        data = json.loads(text)
        families = tuple(Family(f["name"], f["alpha"], tuple(f["rungs"])) for f in data.pop("families"))
        triaged = data.pop("triage")
        return cls(
            **{
                **data,
                "ladder": tuple(data["ladder"]),
                "symptoms": tuple(data["symptoms"]),
                "early": tuple(data.get("early", ())),
                "costs": tuple(data.get("costs", ())),
                "families": families,
                "triage": None if triaged is None else tuple(triaged),
            }
        )


def write_plan(plan: DiagnosisPlan, path: Path) -> Path:
    """The plan as JSON, written atomically (a temp file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(plan.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path


def read_plan(path: Path) -> DiagnosisPlan:
    """A plan written by write_plan; a ValueError (one line) when it is not one."""
    try:
        return DiagnosisPlan.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"plan={str(path)!r} is invalid: {exc}") from None


def step_cost(config: AgentConfig, obs_dim: int, actions: int) -> float:
    """Estimated FLOP per agent-step: STEP_OVERHEAD_FLOP, the greedy action's forward pass, and per
    update the online network's forward and backward (3 passes) and the target's forward (1) over a
    batch. Matches docs/engine.md's 2.3 MFLOP of network for a 64x64 CartPole DQN at batch 64."""
    sizes = [obs_dim, *config.hidden_sizes, actions]
    macs = sum(a * b for a, b in zip(sizes, sizes[1:]))
    updates = config.gradient_steps / config.env_steps_per_update
    return STEP_OVERHEAD_FLOP + 2 * macs * (4 * config.batch_size * updates + 1)


def rung_costs(base: AgentConfig, rungs) -> tuple[float, ...]:
    """Each rung's compute relative to the base's: env steps x step_cost."""
    spec = env_spec(base.env_id)

    def cost(config: AgentConfig) -> float:
        return config.total_env_steps * step_cost(config, spec.obs_dim, spec.num_actions)

    return tuple(round(cost(rung.config) / cost(base), 3) for rung in rungs)


def families_of(config: AgentConfig, ladder: tuple[str, ...]) -> tuple[Family, ...]:
    """The two families, from the config alone: the rungs lint points at, and the rest; alpha split
    evenly between the families that have members."""
    flagged = set(triage(lint(config), (), ladder))
    members = {
        "flagged": tuple(key for key in ladder if key in flagged),
        "other": tuple(key for key in ladder if key not in flagged),
    }
    present = [name for name in FAMILIES if members[name]]
    return tuple(Family(name, ALPHA / len(present), members[name]) for name in present)


def first_look_seeds(families: tuple[Family, ...]) -> int:
    """The fewest seeds at which the strongest effect settles at the first look of a two-look
    design in every family (reports.analysis.stats.seeds_to_settle at the family's alpha)."""
    return max((seeds_to_settle(2 * len(f.rungs), f.alpha) for f in families), default=2)


def affordable_steps(profile: str, seeds: int) -> int | None:
    """The largest budget per seed whose first screen (the base and TRIAGE_SIZE rungs, `seeds`
    each) fits the profile's compute; None when the profile trains any budget."""
    if profile in FIXED_CAPS:
        return FIXED_CAPS[profile]
    compute = FIRST_SCREEN_AGENT_STEPS.get(profile)
    return None if compute is None else compute // (seeds * (1 + TRIAGE_SIZE))


def build_plan(
    config: AgentConfig,
    profile: str,
    profile_seeds: int,
    size,
    seeds_option: int | None = None,
    max_seeds_option: int | None = None,
    steps_option: int | None = None,
) -> DiagnosisPlan:
    """The plan of a diagnosis of `config` (as the user wrote it) at `profile`: the budget trained
    (the config's own, or --ablation-steps, or the affordable prefix), the seeds (the quick profile:
    first_look_seeds, doubled on demand once; otherwise the profile's or the option's), and the
    ladder around the base as `size(config, steps)` sizes it. Not yet triaged."""

    def ladder_at(steps: int) -> tuple[str, ...]:
        return tuple(rung.key for rung in one_knob_ladder(size(config, steps))[0])

    def costs_at(steps: int) -> tuple[float, ...]:
        return rung_costs(size(config, steps), one_knob_ladder(size(config, steps))[0])

    def seeds_for(families) -> tuple[int, int | None]:
        if profile != "quick" or seeds_option is not None:
            return seeds_option if seeds_option is not None else profile_seeds, max_seeds_option
        first = first_look_seeds(families)
        return first, max(max_seeds_option or 0, 2 * first)

    own = config.total_env_steps
    if steps_option is not None:
        steps, affordable = steps_option, None
        own = max(own, steps_option)
    else:
        # The seeds depend on the ladder, the ladder on the budget (the steps rung): seeds from the
        # ladder at the own budget first, then once more at the affordable prefix.
        seeds, _ = seeds_for(families_of(config, ladder_at(own)))
        affordable = affordable_steps(profile, seeds)
        steps = own if affordable is None else min(own, affordable)
    ladder = ladder_at(steps)
    families = families_of(config, ladder)
    seeds, max_seeds = seeds_for(families)
    early_order = triage([f for f in lint(config) if f.order < SECONDARY], (), ladder)
    plan = DiagnosisPlan(
        profile=profile,
        env_id=config.env_id,
        own_steps=own,
        steps=steps,
        affordable_steps=affordable,
        seeds=seeds,
        max_seeds=max_seeds if max_seeds and max_seeds > seeds else None,
        ladder=ladder,
        families=families,
        costs=costs_at(steps),
    )
    return dataclasses.replace(plan, early=plan.admitted(early_order))


def agent_steps(plan: DiagnosisPlan, stage: int, rung_steps: dict[str, int], seeds: int) -> int:
    """Agent-steps a stage trains at `seeds` seeds (rung_steps: each rung's env steps; the base's
    are plan.steps)."""
    base = plan.steps if stage == BASE_STAGE else 0
    return seeds * (base + sum(rung_steps[key] for key in plan.stage_rungs(stage)))
