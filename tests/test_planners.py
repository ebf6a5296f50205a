"""CEM, MPPI and gradient planning behind one interface: each finds the closed-form optimum of linear dynamics
with a quadratic energy, stays within the bounds, starts from the prior, and is picked by `plan.method`."""

from __future__ import annotations

import pytest
import torch

from vjepa_cli.config.plan import CEMConfig, GDConfig, MPPIConfig
from vjepa_cli.config.wm import WMPlanConfig
from vjepa_cli.plan import PLANNERS, CEMPlanner, GDPlanner, MPPIPlanner, make_planner
from vjepa_cli.plan.base import over_horizon
from vjepa_cli.plan.mppi import mppi_weights

B = torch.tensor([[1.0, 0.5], [-0.3, 0.8]])  # (D, A) invertible action matrix
Z0, GOAL = torch.tensor([0.2, -0.1]), torch.tensor([0.5, 0.3])


def linear_quadratic(z0, actions):
    """z_h = z0 + sum_{k<=h} B a_k; features (z_h - goal)^2 so that the L1 energy against 0 is quadratic.
    (S, H, A) -> (S, H, D). With the "sum" energy the unique optimum puts z_1 on the goal and then stays:
    a_0 = B^-1 (goal - z0), a_h = 0 for h > 0."""
    z = z0 + (actions @ B.T).cumsum(1)  # (S, H, D)
    return (z - GOAL) ** 2


def optimum(horizon: int) -> torch.Tensor:
    a = torch.zeros(horizon, 2)
    a[0] = torch.linalg.solve(B, GOAL - Z0)
    return a


CFGS = {
    "cem": CEMConfig(low=(-1.0, -1.0), high=(1.0, 1.0), horizon=3, samples=256, topk=16, iterations=25,
                     energy="sum", min_std=1e-4),
    "mppi": MPPIConfig(low=(-1.0, -1.0), high=(1.0, 1.0), horizon=3, samples=256, topk=32, iterations=25,
                       energy="sum", min_std=1e-4),
    "gd": GDConfig(low=(-1.0, -1.0), high=(1.0, 1.0), horizon=3, samples=2, iterations=150, lr=0.03,
                   energy="sum"),
}


@pytest.mark.parametrize("method", list(PLANNERS))
def test_each_planner_finds_the_closed_form_optimum(method):
    a_star = optimum(3)
    assert (a_star.abs() < 1).all()  # the optimum is inside the bounds
    planner = make_planner(method, linear_quadratic, CFGS[method])
    res = planner.plan(Z0, torch.zeros(2), torch.Generator().manual_seed(0))
    assert res.actions.shape == (3, 2)
    assert torch.allclose(res.actions, a_star, atol=0.03), (method, res.actions)
    assert res.energy < 1e-3
    assert 0 < res.confidence <= 1
    assert res.history[-1]["best"] <= res.history[0]["best"]


@pytest.mark.parametrize("method", list(PLANNERS))
def test_each_planner_stays_within_the_bounds(method):
    seen: list[torch.Tensor] = []
    far = torch.tensor([[2.0, -3.0]])  # the optimum lies outside the box: the answer is the corner

    def rollout(z0, a):
        seen.append(a.detach().clone())
        return (a - far) ** 2

    low, high = (-0.5, -0.1), (0.5, 0.2)
    base = {"cem": CEMConfig, "mppi": MPPIConfig, "gd": GDConfig}[method]
    kw = {"gd": {"iterations": 60, "lr": 0.1}}.get(method, {"init_std": (5.0, 5.0)})
    cfg = base(low=low, high=high, horizon=1, energy="sum", **kw)
    res = make_planner(method, rollout, cfg).plan(None, torch.zeros(2), torch.Generator().manual_seed(0))
    allx = torch.cat(seen)
    assert (allx[..., 0] >= -0.5).all() and (allx[..., 0] <= 0.5).all()
    assert (allx[..., 1] >= -0.1).all() and (allx[..., 1] <= 0.2).all()
    assert torch.allclose(res.actions, torch.tensor([[0.5, -0.1]]), atol=1e-3)


@pytest.mark.parametrize("method", ["mppi", "gd"])
def test_init_mean_is_where_the_search_starts_and_runs_repeat(method):
    target = torch.tensor([[0.6]])
    rollout = lambda z, a: (a - target) ** 2  # noqa: E731
    if method == "mppi":
        cfg = MPPIConfig(low=(-1.0,), high=(1.0,), horizon=1, samples=16, topk=4, iterations=1,
                         init_std=(1e-4,), min_std=0.0, momentum_mean=0.0, energy="sum")
    else:
        cfg = GDConfig(low=(-1.0,), high=(1.0,), horizon=1, samples=1, iterations=1, lr=1e-4, energy="sum")
    planner = make_planner(method, rollout, cfg)
    res = planner.plan(None, torch.zeros(1), torch.Generator().manual_seed(0), init_mean=torch.tensor([-0.7]))
    assert res.actions.item() == pytest.approx(-0.7, abs=1e-3)
    a = planner.plan(None, torch.zeros(1), torch.Generator().manual_seed(3))
    b = planner.plan(None, torch.zeros(1), torch.Generator().manual_seed(3))
    assert torch.equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="init_mean"):
        planner.plan(None, torch.zeros(1), torch.Generator(), init_mean=torch.zeros(3, 2))


def test_gd_chunks_give_the_same_plan():
    cfg = CFGS["gd"]
    from dataclasses import replace

    a = GDPlanner(linear_quadratic, replace(cfg, iterations=20)).plan(Z0, torch.zeros(2), torch.Generator().manual_seed(1))
    b = GDPlanner(linear_quadratic, replace(cfg, iterations=20, chunk=1)).plan(Z0, torch.zeros(2),
                                                                             torch.Generator().manual_seed(1))
    assert torch.allclose(a.actions, b.actions, atol=1e-6)


def test_mppi_weights_closed_form():
    e = torch.tensor([1.0, 2.0, 3.0])  # min 1, mean 2: gap 1; T = 0.5 -> exp(-(0, 2, 4))
    w = mppi_weights(e, 0.5)
    ref = torch.exp(-torch.tensor([0.0, 2.0, 4.0]))
    assert torch.allclose(w, ref / ref.sum())
    assert torch.allclose(mppi_weights(e * 100 + 7, 0.5), w, atol=1e-6)  # scale- and shift-free


def test_plan_method_selects_the_planner_and_bounds_come_from_the_model():
    for method, cls in (("cem", CEMPlanner), ("mppi", MPPIPlanner), ("gd", GDPlanner)):
        cfg = WMPlanConfig(method=method).planner_for((-0.1, -0.2), (0.1, 0.2))
        assert cfg.low == (-0.1, -0.2) and cfg.high == (0.1, 0.2)
        assert isinstance(make_planner(method, linear_quadratic, cfg), cls)
    with pytest.raises(ValueError, match="unknown planner"):
        make_planner("rrt", linear_quadratic, CFGS["cem"])
    with pytest.raises(TypeError, match="MPPIConfig"):
        make_planner("mppi", linear_quadratic, CFGS["cem"])
    with pytest.raises(ValueError, match="action bounds recorded"):
        WMPlanConfig(mppi=MPPIConfig(low=(-1.0,), high=(1.0,)))
    with pytest.raises(ValueError):
        MPPIConfig(temperature=0.0)
    with pytest.raises(ValueError):
        GDConfig(lr=-1.0)
    with pytest.raises(ValueError, match="bounds"):
        make_planner("gd", linear_quadratic, GDConfig()).plan(Z0, torch.zeros(2), torch.Generator())


def test_over_horizon_reduces_per_step_energies_as_named():
    d = torch.tensor([[3.0, 1.0, 2.0], [0.5, 4.0, 0.7]])  # (S, H)
    assert torch.equal(over_horizon(d, "final"), torch.tensor([2.0, 0.7]))
    assert torch.equal(over_horizon(d, "sum"), torch.tensor([6.0, 5.2]))
    assert torch.equal(over_horizon(d, "min"), torch.tensor([1.0, 0.5]))
    with pytest.raises(ValueError, match="unknown energy mode"):
        over_horizon(d, "mean")


def test_min_energy_scores_a_sequence_by_its_closest_approach():
    """z_h = sum_{k<=h} a_k + h^2 (a drift that grows): the goal 0.8 is reachable at step 1 (a_1 = -0.2) and never
    at step 3 (z_3 >= 6). Under "min" CEM finds the pass at step 1; under "final" the best it can do is brake
    (all actions -1, energy 5.2)."""
    z0, goal = torch.tensor([0.0]), torch.tensor([0.8])
    drift = torch.tensor([1.0, 4.0, 9.0]).view(1, 3, 1)
    rollout = lambda z, a: z + a.cumsum(1) + drift  # noqa: E731  (S, H, 1)
    cfg = CEMConfig(low=(-1.0,), high=(1.0,), horizon=3, samples=256, topk=16, iterations=20, energy="min",
                    min_std=1e-4)
    res = make_planner("cem", rollout, cfg).plan(z0, goal, torch.Generator().manual_seed(0))
    assert abs(float(res.actions[0, 0]) + 0.2) < 0.02 and res.energy < 0.02
    final = make_planner("cem", rollout, CEMConfig(**{**cfg.__dict__, "energy": "final"}))
    res_f = final.plan(z0, goal, torch.Generator().manual_seed(0))
    assert torch.allclose(res_f.actions, -torch.ones(3, 1), atol=0.02) and abs(res_f.energy - 5.2) < 0.05


def two_wells(z0, a):
    """Two equally deep optima at a = +-0.8 (1-D, one step): (S, 1, 1) -> (S, 1, 1) energies."""
    return torch.minimum((a - 0.8) ** 2, (a + 0.8) ** 2)


@pytest.mark.parametrize("base", [CEMConfig, MPPIConfig])
def test_pick_best_returns_the_lowest_energy_sequence_seen(base):
    # One wide iteration: the elites sit in both wells, so their mean falls between them (well above both minima), while
    # the best sample lies in a well. The same seed draws the same samples for both picks.
    kw = dict(low=(-1.0,), high=(1.0,), horizon=1, samples=64, topk=16, iterations=1, energy="sum",
              momentum_mean=0.0)
    if base is MPPIConfig:
        kw["temperature"] = 100.0  # nearly equal weights: the weighted mean also lands between the wells
    mean = make_planner("cem" if base is CEMConfig else "mppi", two_wells, base(**kw))
    best = make_planner("cem" if base is CEMConfig else "mppi", two_wells, base(**kw, pick="best"))
    r_mean = mean.plan(None, torch.zeros(1), torch.Generator().manual_seed(0))
    r_best = best.plan(None, torch.zeros(1), torch.Generator().manual_seed(0))
    assert r_mean.energy > 0.1 and r_best.energy < 0.01  # the mean lies between the wells, the best in one
    assert abs(abs(r_best.actions.item()) - 0.8) < 0.1
    assert r_best.energy == pytest.approx(float(two_wells(None, r_best.actions.view(1, 1, 1))), abs=1e-7)


@pytest.mark.parametrize("base", [CEMConfig, MPPIConfig])
def test_keep_elites_scores_the_last_iterations_best_again(base):
    seen: list[torch.Tensor] = []

    def rollout(z0, a):
        seen.append(a.clone())
        return linear_quadratic(z0, a)

    cfg = base(low=(-1.0, -1.0), high=(1.0, 1.0), horizon=3, samples=32, topk=8, iterations=4, energy="sum",
               keep_elites=3)
    res = make_planner("cem" if base is CEMConfig else "mppi", rollout, cfg).plan(
        Z0, torch.zeros(2), torch.Generator().manual_seed(0))
    for prev, cur in zip(seen[:3], seen[1:4], strict=True):  # one batch per iteration, then the final mean
        e = linear_quadratic(Z0, prev).flatten(1).mean(1) * 3  # the "sum" energy over 3 steps, up to scale
        assert torch.equal(cur[-3:], prev[e.argsort()[:3]])
    bests = [h["best"] for h in res.history]
    assert all(b1 <= b0 for b0, b1 in zip(bests, bests[1:], strict=False))  # the best is never lost
    with pytest.raises(ValueError, match="keep_elites"):
        base(low=(-1.0,), high=(1.0,), samples=8, topk=8, keep_elites=8)
