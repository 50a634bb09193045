"""sleuth bench: the plan covers every table and fits the data, finished cells are reused and
changed ones re-run with everything built on them, and a tiny suite runs end to end into tables
that never hide a false accusation."""

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sleuth.bench import SUITES, open_bench, run_bench, runner
from sleuth.bench import cells as bench_cells
from sleuth.bench import papers as bench_papers
from sleuth.bench.plan import VICTIM, DataSizes, plan, steal_key
from sleuth.bench.rejudge import rejudge
from sleuth.bench.suites import STOLENENCODER, OtherArch, Suite
from sleuth.bench.tables import View, render, table_000_4, verification
from sleuth.cli import app
from sleuth.embed import EmbedConfig
from sleuth.errors import SleuthError
from sleuth.models import load_encoder, load_owner_key
from sleuth.steal import StealConfig

FMNIST = DataSizes(private=30000, public=30000, test=10000, labelled=True)


def tiny_suite(spec: str) -> Suite:
    """Every kind of cell, at a size that trains in seconds."""
    return Suite(
        name="tiny",
        description="every cell kind on synthetic data",
        data=spec,
        recipe=EmbedConfig(epochs=2, batch_size=32, lr=3e-3, rep_dim=16, wm_fraction=0.5),
        references=3,
        other=OtherArch(arch_kwargs={"cifar_stem": False}, epochs=1, references=2),
        attack=StealConfig(epochs=3, batch_size=16),
        budget=60,
        losses=("mse", STOLENENCODER),
        sweep=("mse",),
        budgets=(30, 60),
        augmented=("mse",),
        surrogate_fractions=(0.25,),
        defence_budget=60,
        defences=(
            ("topk:k=4", (STOLENENCODER,)),
            ("poison:eps=0.2", (STOLENENCODER,)),
            ("noise:sigma=1", ("mse",)),
        ),
        thieves=True,
        finetune_epochs=1,
        samples=30,
        fewest=(10, 20),
        scaling_samples=(20, 40),
        scaling_images={"smallresnet": (60, 120), "resnet18": (60,)},
        other_owners=1,
        transforms=("rotation", "noise-10%"),
        sequential_budget=40,
        sequential_copies=60,
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_images):
    root = tmp_path_factory.mktemp("bench")
    x, y = make_images(n=300, seed=3)
    np.savez(root / "data.npz", x=x, y=y)
    suite = tiny_suite(f"npz:{root / 'data.npz'}")
    # a comma and an equals sign in the folder: the poison defence's surrogate path holds them
    result = run_bench(open_bench(suite, root / "out,a=b"), device="cpu")
    return suite, result


# --- the plan ----------------------------------------------------------------------------------


def test_full_plan_has_every_table_row():
    suite = SUITES["full"]
    p = plan(suite, "fmnist:x", "fmnist:x", FMNIST)
    keys = set(p.cells)
    assert {steal_key(a, suite.budget) for a in suite.losses} <= keys  # 000 Table 2
    assert {steal_key(a, b) for a in suite.sweep for b in suite.budgets} <= keys  # Tables 7, 16
    for loss in suite.augmented:  # Table 17
        assert {steal_key(loss, f"{suite.budget}-{v}") for v in ("standard", "rotation")} <= keys
    assert {f"pretrain/surrogate-{n}" for n in (900, 1500)} <= keys  # 002 Table X, 3 % and 5 %
    assert steal_key(STOLENENCODER, "1500-queryaug") in keys
    assert p.cells[steal_key(STOLENENCODER, "1500-queryaug")].params["attack"]["queries"] == (
        1500 * (1 + suite.attack.epochs)
    )
    assert len([k for k in keys if k.startswith("defended/")]) == len(suite.defences)
    refs = [k for k in keys if k.startswith("embed/") and "-ref-" in k or k.startswith("embed/ref")]
    assert len(refs) >= 5 and {p.cells[r].params["config"]["arch"] for r in refs} == {
        "smallresnet",
        "resnet18",
    }
    # every copy and every reference is verified; each reference against the others only
    copies = [k for k, c in p.cells.items() if c.kind in ("steal", "evade") and c.group == "steal"]
    assert all(f"verify/{k}" in keys for k in copies + refs)
    for r in refs:
        assert r not in p.cells[f"verify/{r}"].params["references"]
    # references are trained by the victim's recipe: only the seed (and watermark, with the
    # victim's secret intervals, pinned to its seed so the suite reproduces) differ
    victim_cfg = p.cells[VICTIM].params["config"]
    assert victim_cfg["wm_intervals"] != "random"
    for r in refs:
        cfg = p.cells[r].params["config"]
        if cfg["arch"] == victim_cfg["arch"]:
            differ = {k for k in cfg if cfg[k] != victim_cfg[k]}
            assert differ == {"seed", "watermark", "wm_intervals"}
    # the thief's surrogate encoders start from weights of their own, not the victim's or a ref's
    seeds = {p.cells[k].params["config"]["seed"] for k in [VICTIM, *refs]}
    assert all(
        c.params["config"]["seed"] not in seeds for c in p.cells.values() if c.kind == "pretrain"
    )
    # other owners watermark by the victim's recipe from seeds and intervals of their own; they
    # calibrate every verification beside the references (the watermark counts only against
    # rotation-aware references), and each is verified against the references and the others
    owners = [k for k in keys if k.startswith("embed/owner-")]
    assert len(owners) == suite.other_owners >= 3
    for o in owners:
        cfg = p.cells[o].params["config"]
        assert {k for k in cfg if cfg[k] != victim_cfg[k]} == {"seed", "wm_intervals"}
        assert cfg["seed"] not in seeds
        others = [x for x in owners if x != o]
        assert set(p.cells[f"verify/{o}"].params["references"]) == {*refs, *others}
    for k in copies:
        assert set(p.cells[f"verify/{k}"].params["references"]) == {*refs, *owners}
    timed = [c.params["samples"] for c in p.cells.values() if c.kind == "time-verify"]
    assert min(timed) == 250 and max(timed) == 4000 and not p.notes
    # every cell comes after the cells it needs
    order = list(p.cells)
    assert all(order.index(n) < order.index(k) for k, c in p.cells.items() for n in c.needs)


def test_plan_fits_the_data_and_refuses_what_cannot_fit():
    small = DataSizes(private=4000, public=4000, test=2000, labelled=False)
    fits = replace(SUITES["full"], budget=1000, budgets=(1000, 5000), defence_budget=1000)
    p = plan(fits, "d", "t", small)
    assert not any(k.endswith("-5000") for k in p.cells)
    assert any("5,000 queries left out" in n for n in p.notes)
    assert any("supcon" in n for n in p.notes) and steal_key("supcon", 1000) not in p.cells
    for too_big in (SUITES["full"], replace(fits, defence_budget=5000)):
        with pytest.raises(SleuthError, match="only 4,000"):
            plan(too_big, "d", "t", small)
    with pytest.raises(SleuthError, match="at least 3 references"):
        replace(SUITES["quick"], references=2)
    for other in (OtherArch(references=0), OtherArch(arch="smallresnet")):
        with pytest.raises(SleuthError, match="second architecture"):
            replace(SUITES["quick"], other=other)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"losses": ("mse", "nope")}, "unknown loss 'nope'"),
        ({"sweep": ("msee",)}, "unknown loss 'msee'"),
        ({"defences": (("topk:k=8", ("nope",)),)}, "unknown loss 'nope'"),
        ({"augmented": ("barlow",)}, "one-view direct losses, not barlow"),
        ({"augmented": (STOLENENCODER,)}, "one-view direct losses, not stolenencoder"),
        ({"defences": (("blur:x=1", ("mse",)),)}, "unknown defence 'blur'"),
        ({"defences": (("topk:k=0", ("mse",)),)}, "topk"),
        ({"defences": (("poison:lam=1", ("mse",)),)}, "no eps="),
        ({"defences": (("poison:eps=0.1,surrogate=x", ("mse",)),)}, "'surrogate'"),
    ],
)
def test_a_suite_that_cannot_run_is_refused_when_defined(change, message):
    """Names and specs a cell would only reject when it runs, maybe an hour into a bench."""
    with pytest.raises(SleuthError, match=message):
        replace(SUITES["quick"], **change)


def test_labelled_attacks_beyond_table_2_are_refused_on_unlabelled_data():
    unlabelled = DataSizes(private=4000, public=4000, test=2000, labelled=False)
    suite = replace(SUITES["quick"], sweep=("mse", "supcon"))
    with pytest.raises(SleuthError, match="supcon beyond 000 Table 2.*no labels"):
        plan(suite, "d", "t", unlabelled)
    labelled = plan(suite, "d", "t", replace(unlabelled, labelled=True))
    assert steal_key("supcon", 500) in labelled.cells


def test_select_keeps_what_a_group_builds_on():
    p = plan(SUITES["quick"], "demo", "demo", DataSizes(4000, 4000, 2000, True))
    chosen = {c.key for c in p.select({"defences"})}
    assert VICTIM in chosen and steal_key(STOLENENCODER, "defender") in chosen
    assert not any(k.startswith(("verify/", "time/")) for k in chosen)


def test_each_kind_digests_only_code_that_can_change_its_result():
    """A kind's code digest leaves out subpackages it never calls, and the import graph
    really keeps them apart (else an edit there could change a reused cell's result)."""
    import ast

    from sleuth.manifest import PACKAGE_DIR

    assert set(bench_cells.NOT_KIND_CODE) == set(bench_cells.KINDS)
    assert runner.cell_code("verify") != runner.cell_code("embed")
    for kind, excluded in bench_cells.NOT_KIND_CODE.items():
        kept = [p for p in ("embed/", "steal/", "verify/") if p not in excluded]
        for package in kept:
            for path in (PACKAGE_DIR / package).rglob("*.py"):
                for node in ast.walk(ast.parse(path.read_text())):
                    if isinstance(node, ast.ImportFrom) and node.module:
                        imported = node.module.removeprefix("sleuth.").split(".")[0] + "/"
                        assert imported not in excluded, (kind, path.name, node.module)


# --- resuming, with instant cell kinds ----------------------------------------------------------


@pytest.fixture
def instant(monkeypatch):
    """Cell kinds that only count their calls; tables and plot see no real results."""
    calls = []

    def fake(ctx, cell):
        calls.append(cell.key)
        if cell.key == "boom":
            raise RuntimeError("boom")
        return {"n": len(calls)}

    monkeypatch.setattr("sleuth.bench.runner.KINDS", {k: fake for k in bench_cells.KINDS})
    monkeypatch.setattr("sleuth.bench.tables.render", lambda results, **options: "tables")
    monkeypatch.setattr("sleuth.bench.plots.scaling_plot", lambda results, path: None)
    return calls


def test_finished_cells_are_reused_and_changes_rerun_their_dependents(
    instant, tmp_path, monkeypatch
):
    suite = SUITES["quick"]
    first = run_bench(open_bench(suite, tmp_path / "b"), device="cpu")
    assert len(first.ran) == len(instant) > 50 and not first.reused
    instant.clear()
    again = run_bench(open_bench(suite, tmp_path / "b"), device="cpu")
    assert instant == [] and len(again.reused) == len(first.ran)
    # other code behind the cells: nothing it ran is reused, and --list says why
    real = runner.cell_code
    monkeypatch.setattr(runner, "cell_code", lambda kind: "other code")
    states = dict((c.key, s) for c, s in open_bench(suite, tmp_path / "b").statuses())
    assert states[VICTIM] == "to run again: sleuth's code changed since it ran"
    assert set(states.values()) == {
        "to run again: sleuth's code changed since it ran",
        "to run again: a cell it builds on changed",
    }
    # other verification code: only the verifications run again, every model is reused
    monkeypatch.setattr(
        runner, "cell_code", lambda kind: "new stats" if kind == "verify" else real(kind)
    )
    bench = open_bench(suite, tmp_path / "b")
    rerun = {c.key for c, s in bench.statuses() if s != "done"}
    assert rerun and {bench.plan.cells[k].kind for k in rerun} == {"verify"}
    monkeypatch.setattr(runner, "cell_code", real)
    assert {s for _, s in open_bench(suite, tmp_path / "b").statuses()} == {"done"}
    # a longer attack changes every steal cell, and so everything verified or timed from them
    changed = replace(suite, attack=replace(suite.attack, epochs=21))
    third = run_bench(open_bench(changed, tmp_path / "b"), device="cpu")
    assert VICTIM in third.reused and steal_key("mse", 1000) in third.ran
    assert f"verify/{steal_key('mse', 1000)}" in third.ran
    assert "verify/embed/ref-1" in third.reused  # built on embeds only: untouched
    results = json.loads(third.results.read_text())
    assert set(results["cells"]) == set(third.ran) | set(third.reused)


def test_a_failing_cell_keeps_the_finished_ones(instant, tmp_path):
    suite = SUITES["quick"]
    bench = open_bench(suite, tmp_path / "b")
    victim = bench.plan.cells[VICTIM]
    bench.plan.cells = {VICTIM: victim, "boom": replace(victim, key="boom")}
    with pytest.raises(RuntimeError):
        run_bench(bench, device="cpu")
    assert (tmp_path / "b" / "cells" / "embed" / "victim.json").exists()
    assert not (tmp_path / "b" / "cells" / "boom.json").exists()
    assert not list((tmp_path / "b").rglob("*.tmp"))


def test_a_folder_serves_one_bench(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bench.json").write_text(
        json.dumps({"format": "sleuth-bench", "suite": "full", "data": "demo", "task": "demo"})
    )
    with pytest.raises(SleuthError, match="holds the full suite"):
        open_bench("quick", tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x").write_text("x")
    with pytest.raises(SleuthError, match="holds no bench"):
        open_bench("quick", tmp_path / "c")
    with pytest.raises(SleuthError, match="unknown suite"):
        open_bench("nope", tmp_path / "d")


def test_cli_refuses_bad_input_with_one_line_and_nothing_written(tmp_path):
    runner = CliRunner()
    for args, message in (
        (["--suite", "nope"], "unknown suite"),
        (["--data", "nope:x"], "unknown dataset kind"),
        (["--only", "embed,nope"], "unknown group"),
    ):
        res = runner.invoke(app, ["bench", *args, "--out", str(tmp_path / "o"), "--json"])
        assert res.exit_code == 2 and message in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


# --- a tiny suite, end to end ---------------------------------------------------------------


def test_share_of_the_lead_is_measured_from_the_untrained_floor():
    """SA/TA says little when random features get most of TA: the share of the victim's lead
    over an untrained encoder of its architecture is (SA - floor) / (TA - floor)."""
    from sleuth.bench.tables import View

    cells = {
        VICTIM: {"result": {"accuracy": 0.83, "arch": "smallresnet"}},
        "embed/untrained-smallresnet": {"result": {"accuracy": 0.78}},
    }
    view = View({"cells": cells, "suite_definition": {}})
    assert view.floor == 0.78
    assert view.lead(0.825) == pytest.approx(0.9)
    assert view.lead(0.78) == pytest.approx(0.0) and view.lead(None) is None
    cells[VICTIM]["result"]["accuracy"] = 0.78  # no lead at all: no share
    assert view.lead(0.8) is None


def test_tiny_bench_runs_every_cell_and_renders_every_table(tiny):
    suite, result = tiny
    results = json.loads(result.results.read_text())
    assert len(result.ran) == len(results["cells"]) and not result.reused
    tables = result.tables.read_text()
    for title in (
        "000 Table 2",
        "000 Table 7",
        "002 Table II",
        "002 Table X",
        "000 Table 16",
        "000 Table 17",
        "002 Tables XIII-XV",
        "Verdicts",
        "000 Table 4",
        "000 Table 18",
        "000 Table 19",
        "000 Table 20",
        "free output transformations",
        "Sequential",
        "Scaling",
    ):
        assert any(line.startswith("## ") and title in line for line in tables.splitlines()), title
    assert result.plot is not None and result.plot.read_bytes()[:4] == b"\x89PNG"
    cells = results["cells"]
    # no independent model is ever accused, in one look or in rounds
    independent = ("embed/ref", "embed/resnet18-ref", "embed/owner", "embed/untrained")
    judged = 0
    for key, cell in cells.items():
        suspect = cell["params"].get("suspect", "")
        if cell["kind"] in ("verify", "sequential") and suspect.startswith(independent):
            judged += 1
            assert cell["result"]["verdict"] != "stolen", key
    assert judged == 2 * (3 + 2 + 1 + 2)  # references, resnet18 references, owner, untrained
    # the untrained encoders are the utility floor, shown in 000 Table 2 (on this toy data random
    # features already separate the classes: no lead to recover, so the share is a dash)
    floor = cells["embed/untrained-smallresnet"]["result"]["accuracy"]
    assert f"| untrained (floor) | {100 * floor:.1f} |" in tables
    # each copy is verified under every transformation, through the black-box route, and the
    # answers the verification read are the transformed ones
    moved = [k for k, c in cells.items() if c["kind"] == "transformed"]
    copies = [
        k for k, c in cells.items() if c["kind"] in ("steal", "evade") and c["group"] == "steal"
    ]
    assert len(moved) == 2 * len(copies) > 0
    # ... against the victim's recipe only (the zoo an investigator builds: its references and
    # other owners)
    victim_arch = cells[VICTIM]["params"]["config"]["arch"]
    for k in moved:
        refs = cells[k]["params"]["references"]
        assert refs and all(cells[r]["params"]["config"]["arch"] == victim_arch for r in refs)
        assert len(refs) == suite.references + suite.other_owners
    mse = steal_key("mse", 60)
    answers = result.out_dir / "models" / "transformed" / mse / "rotation" / "answers.h5"
    with h5py.File(answers) as f:
        rotated = f["answers"][:]
    folder = result.out_dir / "models" / "transformed" / mse / "rotation"
    key = json.loads((folder / "challenge.key.json").read_text())
    with h5py.File(folder / "challenge.h5") as f:
        plain = load_encoder(result.out_dir / "models" / mse / "encoder.pt").represent(
            torch.from_numpy(f["x"][:])
        )
    assert rotated.shape == tuple(plain.shape) and len(key["roles"]) > 0
    assert not np.allclose(rotated, plain.numpy(), atol=1e-3)  # moved ...
    gram = plain.numpy() @ plain.numpy().T
    assert np.allclose(rotated @ rotated.T, gram, rtol=1e-3, atol=1e-3)  # ... by a rotation
    # the copy of the largest budget is verified in rounds, within its budget
    rounds = cells[f"sequential/{mse}"]["result"]
    assert rounds["queries_used"] <= 40 and rounds["rounds"] >= 1
    # query-aug pays one query per view per epoch: 30 images, 3 epochs of one batch of 16 views
    assert cells[steal_key(STOLENENCODER, "30-queryaug")]["result"]["queries_used"] == 30 + 3 * 16
    # the references' watermark success is near chance, the victim's own is recorded
    assert cells[VICTIM]["result"]["own_watermark"] is not None


def test_poison_eps_is_a_fraction_of_the_victims_median_answer_norm(tiny):
    suite, result = tiny
    applied = json.loads(result.results.read_text())["cells"]["defended/poison-eps0p2"]["result"]
    head, surrogate = applied["defence"].split(",surrogate=")
    options = dict(kv.split("=") for kv in head.split(":", 1)[1].split(","))
    victim = result.out_dir / "models" / "embed" / "victim"
    key = load_owner_key(victim / "owner-key.pt")
    images = bench_cells.load_images(key.split.data_spec, "train").images
    public = images[torch.as_tensor(key.split.public[:2000])]
    norm = load_encoder(victim / "encoder.pt").represent(public).norm(dim=1).median()
    assert float(options["eps"]) == pytest.approx(0.2 * float(norm), rel=1e-4)
    assert surrogate == str(result.out_dir / "models/steal/stolenencoder-defender/encoder.pt")


def test_a_second_run_reuses_everything_and_list_says_done(tiny):
    suite, result = tiny
    again = run_bench(open_bench(suite, result.out_dir), device="cpu")
    assert again.ran == [] and len(again.reused) == len(result.ran)
    states = {s for _, s in open_bench(suite, result.out_dir).statuses()}
    assert states == {"done"}


def test_tables_flag_a_false_accusation(tiny):
    _, result = tiny
    results = json.loads(result.results.read_text())
    cell = results["cells"]["verify/embed/ref-1"]
    cell["result"]["verdict"] = "stolen"
    lines = verification(View(results))
    row = next(line for line in lines if line.startswith("| ref-1 "))
    assert "**stolen** (false positive)" in row
    assert "accused: 1 of" in lines[-1] and "embed/ref-1" in lines[-1]
    # another owner's watermarked encoder is an independent model too
    results["cells"]["verify/embed/owner-1"]["result"]["verdict"] = "stolen"
    lines = verification(View(results))
    row = next(line for line in lines if line.startswith("| owner-1 "))
    assert "**stolen** (false positive)" in row and "accused: 2 of" in lines[-1]
    # a reference's rejected watermark test is marked in 000 Table 4 as a copy's would be
    ttest = next(t for t in cell["result"]["tests"] if t["name"] == "watermark-ttest")
    ttest.update(rejected=True, counted=True)
    row = next(line for line in table_000_4(View(results)) if line.startswith("| ref-1 "))
    assert row.endswith("**✓** |")
    assert "false positive" not in render(json.loads(result.results.read_text()), out_dir="x")


def test_rejudge_runs_verifications_again_at_another_size_and_writes_nothing_into_the_bench(
    tiny, tmp_path
):
    """A bench's verify and transformed cells judged again at 20 samples instead of the suite's
    30: each at the new size (fewer queries), the cells judged by other code left out, the
    tables saying the new size, and the bench's own results and files untouched."""
    _, result = tiny
    full = json.loads(result.results.read_text())
    copy = steal_key("mse", 60)
    keep = [f"verify/{VICTIM}", f"verify/{copy}", f"transformed/{copy}/rotation", f"fewest/{copy}"]
    bench = tmp_path / "bench"  # the tiny bench with four of its cells, to keep this short
    (bench / "models").mkdir(parents=True)
    for group in (result.out_dir / "models").iterdir():
        (bench / "models" / group.name).symlink_to(group, target_is_directory=True)
    (bench / "answer-cache").symlink_to(result.out_dir / "answer-cache")
    small = {**full, "cells": {k: full["cells"][k] for k in keep}}
    (bench / "results.json").write_text(json.dumps(small))
    before = {p: p.stat().st_mtime_ns for p in (result.out_dir / "models").rglob("*")}

    again = rejudge(bench, tmp_path / "work", samples=20)

    assert set(again["cells"]) == set(keep[:3])
    for key in keep[:3]:
        old, new = full["cells"][key], again["cells"][key]
        assert new["params"] == {**old["params"], "samples": 20}
        assert new["result"]["queries"] < old["result"]["queries"]
        assert new["result"]["verdict"] in ("stolen", "not_stolen", "inconclusive")
    assert again["cells"][f"transformed/{copy}/rotation"]["result"]["transform"] == "rotation"
    assert again["suite_definition"]["samples"] == 20 and again["rejudged"]["cells"] == 3
    assert "with 20 challenge samples" in verification(View(again))[0]
    assert (tmp_path / "work" / "models" / "transformed" / copy / "rotation").is_dir()
    assert json.loads(result.results.read_text()) == full
    assert {p: p.stat().st_mtime_ns for p in (result.out_dir / "models").rglob("*")} == before


def test_papers_figures_sit_under_our_budgets_and_the_rest_are_named(tiny, monkeypatch):
    _, result = tiny
    results = json.loads(result.results.read_text())
    monkeypatch.setitem(bench_papers.T000_7, "rows", {"mse": {30: 11.1, 999: 22.2}})
    monkeypatch.setitem(bench_papers.T000_18, "rows", {"mse": {999: 33.3}})
    tables = render(results, out_dir="x")
    assert "| mse (000 Table 7) | 11.1 | – |" in tables  # our columns are 30 and 60 queries
    assert "other figures (queries: value): mse 999: 22.2." in tables
    assert "(000 Table 18) |" not in tables and "(queries: value): mse 999: 33.3." in tables


def test_cli_lists_cells_and_prints_a_summary(tiny, tmp_path):
    suite, result = tiny
    runner = CliRunner()
    # the tiny suite is not registered: the CLI is checked on the registered quick suite's plan
    res = runner.invoke(app, ["bench", "--list", "--json", "--out", str(tmp_path / "q")])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["status"] for r in rows} == {"to run"} and len(rows) > 50
    assert not (tmp_path / "q").exists()  # listing writes nothing
