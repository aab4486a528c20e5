"""Deep Feature Reweighting (Kirichenko et al., arXiv 2204.02937), checked against scikit-learn.

The recipe's C tuning and refit averaging are recomputed here on the same random draws (the
recipe's documented use of ``default_rng(seed)``: a permutation into two halves, one balanced
tuning subset per C, one balanced subset per refit), with features, standardisation, scoring
and averaging done independently.
"""

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from stalwart import fit, models
from stalwart.data import GroupedDataset, Splits
from stalwart.recipes import dfr as dfr_module
from stalwart.recipes.dfr import balanced_subset

C_GRID = (1.0, 0.1, 0.001)  # 0.001 zeroes every weight: a constant head, worst group 0
REFITS = 3
SEED = 3
SETTINGS = dict(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", progress=False, seed=SEED)


def spurious(n, seed, majority):
    """Label in x[0], attribute in x[1]; the attribute agrees with the label in ``majority``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    agrees = torch.rand(n, generator=g) < majority
    attribute = torch.where(agrees, y, 1 - y)
    x = torch.randn(n, 2, generator=g) * 0.6 + 2 * torch.stack([y, attribute], 1).float()
    names = [f"y={c}, a={a}" for c in (0, 1) for a in (0, 1)]
    return GroupedDataset(x, y, 2 * y + attribute, n_classes=2, group_names=names)


def splits():
    return Splits(spurious(128, 0, 0.9), spurious(160, 1, 0.6), spurious(64, 2, 0.5))


def new_model(data):
    torch.manual_seed(0)
    return models.build("mlp", data.train, hidden=[6])


def worst_group_accuracy(predictions, labels, groups):
    return min((predictions[groups == g] == labels[groups == g]).mean() for g in np.unique(groups))


def l1_head(x, y, c):
    return LogisticRegression(l1_ratio=1.0, C=c, solver="liblinear", random_state=SEED).fit(x, y)


def run_dfr(tmp_path, data, **params):
    model = new_model(data)
    params = {"c_grid": C_GRID, "refits": REFITS, **params}
    result = fit(model, "dfr", data, run_dir=tmp_path / "run", method_params=params, **SETTINGS)
    return result, json.loads((tmp_path / "run" / "dfr.json").read_text())


def test_dfr_tunes_c_on_held_out_worst_group_and_averages_refits(tmp_path):
    data = splits()
    result, record = run_dfr(tmp_path, data)

    base = new_model(data)
    base_dir = tmp_path / "run" / record["base_dir"]
    base.load_state_dict(torch.load(base_dir / "checkpoints" / "best.pt")["model"])
    base.eval()
    with torch.no_grad():
        features = base.features(data.val.x).double().numpy()
    x = StandardScaler().fit_transform(features)
    y, groups = data.val.y.numpy(), data.val.group.numpy()

    rng = np.random.default_rng(SEED)
    tune_half, score_half = np.array_split(rng.permutation(len(y)), 2)
    scores, on_tuning_half = {}, {}
    for c in C_GRID:
        tune = tune_half[balanced_subset(groups[tune_half], rng)]
        assert len(set(np.bincount(groups[tune]))) == 1  # the draw is group-balanced
        head = l1_head(x[tune], y[tune], c)
        scores[c] = worst_group_accuracy(
            head.predict(x[score_half]), y[score_half], groups[score_half]
        )
        on_tuning_half[c] = worst_group_accuracy(
            head.predict(x[tune_half]), y[tune_half], groups[tune_half]
        )
    best = max(scores.values())
    chosen_c = min(c for c in C_GRID if scores[c] == best)  # ties: the stronger penalty
    assert chosen_c != C_GRID[-1] and len(set(scores.values())) > 1  # the choice matters here
    assert on_tuning_half != scores  # scoring on the wrong half would show
    assert record["c"] == chosen_c and record["refits"] == REFITS
    assert {float(c): s for c, s in record["held_out_worst_group_accuracy"].items()} == scores

    fits = [l1_head(x[chosen], y[chosen], chosen_c)
            for chosen in (balanced_subset(groups, rng) for _ in range(REFITS))]  # fmt: skip
    coef = np.mean([f.coef_[0] for f in fits], axis=0)
    intercept = np.mean([f.intercept_[0] for f in fits])
    assert not np.allclose(fits[0].coef_, fits[-1].coef_)  # the refits differ: averaging matters
    with torch.no_grad():
        logits = result.model(data.val.x).double().numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0], x @ coef + intercept, atol=1e-4)


def test_dfr_breaks_ties_towards_the_stronger_penalty(tmp_path, monkeypatch):
    monkeypatch.setattr(dfr_module, "_worst_group", lambda *args: 0.5)  # every C scores alike
    _, record = run_dfr(tmp_path, splits(), c_grid=(0.3, 1.0, 0.1, 0.7))
    assert record["c"] == 0.1


@pytest.mark.parametrize("params", [{"refits": 0}, {"c_grid": ()}, {"c_grid": (1.0, -0.1)}])
def test_dfr_rejects_bad_parameters_before_training(tmp_path, params):
    from stalwart.errors import ConfigError

    with pytest.raises(ConfigError, match="method 'dfr'"):
        run_dfr(tmp_path, splits(), **params)
    assert not (tmp_path / "run").exists()


def three_classes(n, seed):
    """Three classes, the label in x[0]; the attribute (x[1]) agrees with it in 80%."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    attribute = torch.where(torch.rand(n, generator=g) < 0.8, y % 2, 1 - y % 2)
    x = torch.randn(n, 2, generator=g) * 0.5 + torch.stack([2.0 * y, 2.0 * attribute], 1)
    names = [f"y={c}, a={a}" for c in range(3) for a in (0, 1)]
    return GroupedDataset(x, y, 2 * y + attribute, n_classes=3, group_names=names)


def test_dfr_fits_a_multinomial_head_for_more_than_two_classes(tmp_path):
    """liblinear fits two classes only; three get saga's multinomial ℓ1 model, row per class."""
    data = Splits(three_classes(192, 0), three_classes(240, 1), three_classes(96, 2))
    result, record = run_dfr(tmp_path, data, c_grid=(1.0, 0.1))

    base = new_model(data)
    base.load_state_dict(
        torch.load(tmp_path / "run" / record["base_dir"] / "checkpoints" / "best.pt")["model"]
    )
    base.eval()
    with torch.no_grad():
        scaler = StandardScaler().fit(base.features(data.val.x).double().numpy())
    x = scaler.transform(base.features(data.val.x).detach().double().numpy())
    y, groups = data.val.y.numpy(), data.val.group.numpy()
    rng = np.random.default_rng(SEED)
    halves = np.array_split(rng.permutation(len(y)), 2)
    for _ in (1.0, 0.1):
        balanced_subset(groups[halves[0]], rng)  # the tuning draws, as the recipe makes them
    fits = [
        LogisticRegression(l1_ratio=1.0, C=record["c"], solver="saga", max_iter=2000,
                           random_state=SEED).fit(x[chosen], y[chosen])
        for chosen in (balanced_subset(groups, rng) for _ in range(REFITS))
    ]  # fmt: skip
    assert fits[0].coef_.shape == (3, 6)
    coef = np.mean([f.coef_ for f in fits], axis=0)
    intercept = np.mean([f.intercept_ for f in fits], axis=0)
    with torch.no_grad():
        logits = result.model(data.val.x).double().numpy()
    np.testing.assert_allclose(logits, x @ coef.T + intercept, atol=1e-4)
    assert (logits.argmax(1) == y).mean() > 0.8
