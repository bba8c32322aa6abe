"""The ablation suite's pytest wiring: the run cache, fixtures and result collection.

Registered by ablations/plugin.py in sessions that run the suite. Options live in
ablations/options.py, settings in ablations/settings.py, storage in ablations/runs/cache.py, result
collection in ablations/collect.py; this module only connects them to pytest's hooks.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from ablations.claims.article import CLAIMS
from ablations.claims.bugs import BUG_CLAIMS
from ablations.claims.literature import LITERATURE
from ablations.claims.procedure import Refutation, Settled, evaluate_family
from ablations.collect import ResultsCollector, session_meta
from ablations.diagnosis.families import settle_families
from ablations.diagnosis.rungs import DIAGNOSIS_MODULE, rung_claims
from ablations.progress import uncaptured_writer
from ablations.runs import remote
from ablations.runs.cache import RunCache
from ablations.settings import AblationSettings, read_settings
from agents.results import git_commit
from reports.analysis.metrics import seed_summary
from reports.analysis.stats import ALPHA
from reports.render.html import build_report

# One torch thread per process: xdist runs one worker per core, and the suite's tensors are
# small; more threads would only contend for the cores.
torch.set_num_threads(1)

SETTINGS = pytest.StashKey[AblationSettings]()
PLAN = pytest.StashKey[list]()
RAY_ADDRESS = pytest.StashKey[str]()
MARKERS = {
    "convergence": "convergence or divergence of a variant on the env",
    "target_lag": "target-network lag and the sync-period sweep",
    "decorrelation": "replay decorrelation and the capacity sweep",
    "claims": "the article's claims: one family, Holm-adjusted verdicts, seeds on demand",
    "bugs": "the bug catalogue: each bug's declared symptom against its twin, and recognition",
    "literature": "claims from the literature (their own family), on the factorial cells",
    "diagnosis": "a user's DQN (--ablation-config) and the one-knob ladder around it",
    "variants(*names)": "the agent variants a test compares (trained before it runs)",
    "refuted(reason, profiles, envs)": "a refutation on record (ablations.claims.procedure.Refutation) at these "
    "profiles and envs (default standard and paper, CartPole-v1): strict xfail there, with the numbers",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    workerinput = getattr(config, "workerinput", None)
    session_id = workerinput.get("ablation_session_id") if workerinput else None
    settings = read_settings(config, session_id)
    config.stash[SETTINGS] = settings
    if workerinput is None:
        git_commit()  # fixed now: the results name the commit the session started on
        # The controller (or the only process, under -n 0) gathers and writes the results.
        config.pluginmanager.register(ControllerPlugin(config, settings), "ablation-controller")
        if settings.executor == "ray":
            # Before anything trains: an unreachable cluster is a one-line usage error. The
            # controller holds the connection (and a local instance) for the whole session;
            # xdist workers connect to the same address.
            try:
                config.stash[RAY_ADDRESS] = remote.connect(settings.ray_address)
            except remote.RayUnavailable as exc:
                raise pytest.UsageError(str(exc)) from None
            config.add_cleanup(remote.disconnect)
    elif settings.executor == "ray":
        config.stash[RAY_ADDRESS] = workerinput["ablation_ray_address"]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """A diagnosis (--ablation-config) runs only the diagnosis module; otherwise it is left out."""
    if collection_path.suffix != ".py" or collection_path.parent != Path(__file__).parent:
        return None
    if not collection_path.name.startswith("test_"):
        return None
    if (collection_path.name == DIAGNOSIS_MODULE) != config.stash[SETTINGS].diagnosis:
        return True
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker shares the controller's session id (used by --ablation-rerun) and
    its Ray address."""
    node.workerinput["ablation_session_id"] = node.config.stash[SETTINGS].session_id
    node.workerinput["ablation_ray_address"] = node.config.stash.get(RAY_ADDRESS, None)


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[SETTINGS].describe()


def _variants_of(item: pytest.Item) -> list[str]:
    names = []
    callspec = getattr(item, "callspec", None)
    if callspec is not None and isinstance(callspec.params.get("variant_run"), str):
        names.append(callspec.params["variant_run"])
    for marker in item.iter_markers("variants"):
        names.extend(marker.args)
    return names


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """After deselection: the variants the selected tests need, and xfail for refuted claims."""
    settings = config.stash[SETTINGS]
    # A diagnosis trains its base and every rung, whichever of its tests are selected.
    plan: list[str] = [v.name for v in settings.session_variants] if items else []
    profile = settings.profile
    for item in items:
        for name in _variants_of(item):
            settings.variant(name)  # an unknown name is an error at collection, not mid-run
            if name not in plan:
                plan.append(name)
        # A refutation is on record for the profiles and the envs it was measured on; elsewhere
        # the claim is open again and the test says what it finds.
        for marker in item.iter_markers("refuted"):
            try:  # the marker's defaults and checks are the record's
                record = Refutation(*marker.args, **marker.kwargs)
            except (TypeError, ValueError) as error:
                raise pytest.UsageError(f"{item.nodeid}: refuted marker: {error}") from None
            if profile in record.profiles and settings.env_id in record.envs:
                # Only the refutation itself (pytest.fail from enforce) counts as the expected
                # failure: any other exception is an error, never read as "refuted".
                item.add_marker(pytest.mark.xfail(strict=True, reason=record.reason, raises=pytest.fail.Exception))
                break
    config.stash[PLAN] = plan


@pytest.fixture(scope="session")
def ablation_settings(pytestconfig: pytest.Config) -> AblationSettings:
    return pytestconfig.stash[SETTINGS]


@pytest.fixture(scope="session")
def ablation_runs(pytestconfig: pytest.Config) -> RunCache:
    """The session's run cache. Each xdist worker first trains its share of the variants the
    selected tests need (every worker computes the same plan and the same families), so the
    cores train in parallel and the file locks make sure no variant is trained twice."""
    cache = RunCache(pytestconfig.stash[SETTINGS], _executor(pytestconfig), _progress_writer(pytestconfig))
    worker, workers = _worker(pytestconfig)
    cache.prefetch(pytestconfig.stash[PLAN], None, worker, workers)
    return cache


def _executor(config: pytest.Config) -> remote.RayExecutor | None:
    """The Ray executor under --ablation-executor=ray (None: train in this process). Its
    progress bar is written past pytest's output capture."""
    settings = config.stash[SETTINGS]
    if settings.executor != "ray":
        return None
    return remote.RayExecutor(config.stash[RAY_ADDRESS], _uncaptured(config), settings.engine_path)


def _uncaptured(config: pytest.Config):
    """A context manager factory that lifts pytest's output capture (a no-op without it)."""
    capture = config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled if capture is not None else nullcontext


def _progress_writer(config: pytest.Config):
    """Where progress lines go (None: nowhere, under -qq). They are written mid-fixture, so
    past the output capture: an xdist worker's stderr is the terminal's; without xdist they go
    through the terminal reporter, which starts them on a fresh line."""
    if config.get_verbosity() < -1:
        return None
    uncaptured = _uncaptured(config)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return uncaptured_writer(f"[ablations {workerinput['workerid']}]", uncaptured)
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        return None

    def write(line: str) -> None:
        with uncaptured():
            terminal.write_line(f"[ablations] {line}")

    return write


def _worker(config: pytest.Config) -> tuple[int, int]:
    """(this xdist worker's index, number of workers); (0, 1) without xdist."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return 0, 1
    return int(workerinput["workerid"].removeprefix("gw")), int(workerinput["workercount"])


def settle_family(
    config: pytest.Config, runs: RunCache, claims: list, family: str, alpha: float = ALPHA
) -> dict[str, Settled]:
    """Settle a family of claims together (Holm across it, seeds on demand by looks). Each
    worker computes the same deterministic result; a look's new seed blocks are shared out."""
    settings = config.stash[SETTINGS]
    worker, workers = _worker(config)
    summaries: dict[tuple[str, int], object] = {}

    def fetch(names: tuple[str, ...], count: int):
        runs.prefetch(names, count, worker, workers)
        for name in names:
            if (name, count) not in summaries:
                run = runs.get(settings.variant(name), count)
                summary = seed_summary(run)
                summary.attrs.update(
                    env_id=settings.env_id,
                    success_threshold=run.env_profile.success_threshold,
                    success_thresholds_shown=run.env_profile.success_thresholds_shown,
                )
                summaries[name, count] = summary
        return {name: summaries[name, count] for name in names}

    write = _progress_writer(config) if worker == 0 else None  # every worker settles the same looks

    def announce(look: int, seeds: int, open_claims: list) -> None:
        if write is not None and len(settings.looks) > 1:
            looks = len(settings.looks)
            write(f"{family}: look {look} of {looks} at {seeds} seeds, {len(open_claims)} of {len(claims)} claims open")

    return evaluate_family(claims, fetch, settings.looks, alpha, on_look=announce, futility=settings.futility)


@pytest.fixture(scope="session")
def claim_family(pytestconfig: pytest.Config, ablation_runs: RunCache) -> dict[str, Settled]:
    """The article's claims, settled as one family."""
    return settle_family(pytestconfig, ablation_runs, list(CLAIMS.values()), "claims")


@pytest.fixture(scope="session")
def literature_family(pytestconfig: pytest.Config, ablation_runs: RunCache) -> dict[str, Settled]:
    """Claims from the literature, settled as one family of their own."""
    return settle_family(pytestconfig, ablation_runs, list(LITERATURE.values()), "literature")


@pytest.fixture(scope="session")
def bug_family(pytestconfig: pytest.Config, ablation_runs: RunCache) -> dict[str, Settled]:
    """The bug catalogue's symptoms, settled as one family of their own."""
    return settle_family(pytestconfig, ablation_runs, list(BUG_CLAIMS.values()), "bugs")


@pytest.fixture(scope="session")
def diagnosis_family(pytestconfig: pytest.Config, ablation_runs: RunCache) -> dict[str, Settled]:
    """A diagnosis' rungs ("this change improves late return over the base"), settled as its plan's
    families (ablations/diagnosis/families.py), each at its share of alpha."""
    settings = pytestconfig.stash[SETTINGS]
    base = settings.session_variants[0].name
    claims = {claim.key.removeprefix(f"{base}+"): claim for claim in rung_claims(settings)}
    return settle_families(
        settings.diagnosis_plan,
        settings.diagnosis_stage,
        claims,
        lambda members, alpha: settle_family(pytestconfig, ablation_runs, members, "diagnosis", alpha),
    )


@pytest.fixture
def variant_run(request: pytest.FixtureRequest, ablation_runs: RunCache):
    """The trained run (all seeds) of the variant this test is parametrized with."""
    return ablation_runs.get(ablation_runs.settings.variant(request.param))


class ControllerPlugin:
    """The controller's half of the suite: progress lines, the results folder, the report."""

    def __init__(self, config: pytest.Config, settings: AblationSettings):
        self.config = config
        self.settings = settings
        self.collector = ResultsCollector()
        self.written: Path | None = None
        self.report: Path | None = None
        self.report_error: str | None = None
        self.announced: set[str] = set()

    def _terminal(self):
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.collector.add(report)
        terminal = self._terminal()
        # One line per variant as its run becomes available: whole lines only, so they
        # interleave cleanly with xdist's progress output.
        for variant in sorted(set(self.collector.runs) - self.announced):
            self.announced.add(variant)
            if terminal is not None and terminal.verbosity >= -1:  # shown with -q, not -qq
                terminal.write_line(f"[ablations] {variant}: {self._describe_run(variant)}")

    def _describe_run(self, variant: str) -> str:
        try:
            metas = [json.loads((Path(path) / "meta.json").read_text()) for path in self.collector.runs[variant]]
        except (OSError, ValueError):
            return "run available"
        seeds = sum(len(meta.get("seeds", [])) for meta in metas)
        size = f"{seeds} seeds x {metas[0].get('config', {}).get('total_env_steps', 0):,} steps"
        trained = [meta for meta in metas if meta.get("session_id") == self.settings.session_id]
        if trained:
            seconds = sum(meta.get("train_seconds", 0) for meta in trained)
            return f"{size}, {sum(len(m['seeds']) for m in trained)} seeds trained now in {seconds:.0f} s"
        return f"{size}, from the cache"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.collector.rows:
            return  # nothing of the ablation suite ran
        meta = session_meta(self.config, self.settings)
        meta["exit_status"] = int(exitstatus)
        self.written = self.collector.write(self.settings.out_dir, meta)
        if self.settings.write_report:
            try:
                self.report = build_report(self.written)
            except Exception as exc:  # the results are safe on disk; say why the report is not
                self.report_error = f"{type(exc).__name__}: {exc}"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.written is None:
            return
        terminalreporter.section("ablation verdicts")
        for row in sorted(self.collector.rows.values(), key=lambda r: r["node_id"]):
            if row["verdict"] is None:
                continue
            effect = "" if row["effect_size"] is None else f"{row['statistic']} = {row['effect_size']:.3g}"
            interval = "" if row["ci_low"] is None else f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]"
            terminalreporter.write_line(f"{row['verdict']:<13} {row['test']:<60} {effect}{interval}")
        terminalreporter.write_line(f"results: {self.written}")
        if self.report is not None:
            terminalreporter.write_line(f"report: {self.report}")
        elif self.report_error is not None:
            terminalreporter.write_line(f"report: not written ({self.report_error})", red=True)
