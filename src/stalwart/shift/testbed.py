"""A model testbed: train a zoo on one ID training set, save every model's outputs on every set.

The empirical basis of accuracy on the line (Miller et al., arXiv 2107.04649) is a testbed:
many models of many kinds, each evaluated on the in-distribution test set and on every shifted
set, one row per model. This module trains and evaluates one model of a zoo
(:func:`run_model`), rebuilds the evaluation sets of a testbed folder (:func:`evaluation_sets`)
and predicts a separately trained model's accuracy on a testbed's shift from the testbed's
pool and that model (:func:`predict_run`). The folder's format is ``stalwart.shift.testbed_io``;
``kind: testbed`` (``stalwart.experiments.kinds.testbed``) runs a whole zoo on an executor.

Evaluation sets are subsampled to ``eval_examples`` examples each, with positions drawn from
the testbed's seed and the set's length only: every model sees the same examples, and the test
set and each corrupted copy of it (same length) keep the same images, so a model's accuracy on
a corruption differs from its test accuracy by the corruption alone.
"""

from __future__ import annotations

import functools
import json
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml
from pydantic import Field

from stalwart import data, models
from stalwart.config import MAX_SEED, ComponentConfig, NamedConfig, TrainConfig
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.shifts import IMAGE_SOURCES
from stalwart.engine.evaluate import logits_in_batches
from stalwart.errors import CheckpointError, ConfigError, DataError, DataMissingError
from stalwart.io import atomic_write_text
from stalwart.shift.outputs import Outputs
from stalwart.shift.predictors import ModelPool, predict
from stalwart.shift.testbed_io import Testbed, is_finished, write_outputs
from stalwart.shift.zoo import ModelSpec, expand_zoo

CONFIG = "config.yaml"
MODELS_DIR = "models"
RUN_SUBDIR = "run"
IDENTITY = ("data", "eval_examples", "seed")
"""Config keys every finished model of a testbed depends on: a change there is a new testbed."""

MAX_SHIFT_PIXELS = 2


class TestbedConfig(NamedConfig):
    """``kind: testbed``: the data (with its shifts), the zoo, the seed and the evaluation size.

    Attributes:
        data: a data source and its parameters, ``shifts`` included (``data.available_shifts``).
        zoo: model families and the values of their settings (``stalwart.shift.zoo``).
        seed: the data's seed (unless ``data.seed`` is given), each model's seed unless its
            family lists seeds, and the seed of the evaluation subsets.
        eval_examples: the most examples kept per evaluation set (None: all of them).
        workers: local processes training models at once.
    """

    __test__ = False  # not a pytest test class, despite its name

    kind: Literal["testbed"]
    name: str = "testbed"
    out: str | None = None
    data: ComponentConfig
    zoo: dict[str, Any]
    seed: int = Field(0, ge=0, le=MAX_SEED)
    eval_examples: int | None = Field(2000, ge=10)
    workers: int = Field(2, ge=1)

    def root(self) -> Path:
        """The testbed's folder: ``out``, else ``runs/<name>``."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def models(self) -> list[ModelSpec]:
        """Every model of the zoo."""
        return expand_zoo(self.zoo, self.seed)

    def data_params(self) -> dict[str, Any]:
        """The data source's parameters, with the testbed's seed where the source takes one."""
        seeded = "seed" in data.SOURCES.parameters(self.data.name)
        return {**({"seed": self.seed} if seeded else {}), **self.data.params}

    def identity(self) -> dict[str, Any]:
        """What the models' outputs depend on besides their own settings (see ``IDENTITY``)."""
        dumped = self.model_dump(mode="json")
        return {key: dumped[key] for key in IDENTITY}

    def validate_runs(self) -> None:
        """Check the data source, its parameters and the zoo before anything runs."""
        data.SOURCES.get(self.data.name)
        try:
            data.SOURCES.check_params(self.data.name, self.data.params)
        except ConfigError as error:
            raise ConfigError(f"data: {error}") from None
        specs = self.models()
        if self.data.name not in IMAGE_SOURCES:
            for spec in specs:
                if spec.settings.get("augment", "none") != "none":
                    raise ConfigError(
                        f"zoo.{spec.family}.augment: {spec.settings['augment']!r} needs image "
                        f"data; dataset {self.data.name!r} is not images, so use augment: none"
                    )


def read_config(testbed_dir: Path | str) -> TestbedConfig:
    """The config a testbed folder was run with."""
    path = Path(testbed_dir) / CONFIG
    if not path.is_file():
        raise DataMissingError(f"{testbed_dir} is not a testbed folder (no {CONFIG})")
    return TestbedConfig.model_validate(yaml.safe_load(path.read_text()))


def claim_folder(config: TestbedConfig) -> Path:
    """Create the testbed folder, or check that it holds this testbed; write ``config.yaml``.

    A folder holding a testbed whose data, evaluation size or seed differ is refused: its
    finished models were evaluated on other sets. The zoo may change (models are added; the
    ones already finished stay).

    Raises:
        CheckpointError: the folder holds a testbed with another identity, or an unreadable
            ``config.yaml``.
    """
    root = config.root()
    path = root / CONFIG
    if path.exists():
        try:
            stored = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path} is not valid YAML ({error}); use another out") from None
        current = config.identity()
        differ = [
            f"{key}: {stored.get(key)!r} there, {current[key]!r} now"
            for key in IDENTITY
            if not isinstance(stored, dict) or stored.get(key) != current[key]
        ]
        if differ:
            raise CheckpointError(
                f"{root} holds a testbed with other evaluation sets ({'; '.join(differ)}). "
                "Nothing was changed. Choose another out, or the same data, eval_examples and seed."
            )
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return root


def subsample(dataset: GroupedDataset, n: int | None, seed: int) -> GroupedDataset:
    """At most ``n`` examples of ``dataset``, in their order, drawn from ``seed`` and its length.

    Drawn from the length alone (not the name), so sets of equal length (the test set and its
    corrupted copies) keep the same positions.
    """
    if n is None or len(dataset) <= n:
        return dataset
    rng = np.random.default_rng([seed, len(dataset)])
    return dataset.subset(np.sort(rng.choice(len(dataset), size=n, replace=False)))


@functools.lru_cache(maxsize=2)
def _load(name: str, params_json: str, eval_examples: int | None, seed: int) -> Splits:
    # Cached per process: a worker trains many models on one testbed's data, and building the
    # shifted sets (corruptions of every test image) costs seconds.
    splits = data.load(name, **json.loads(params_json))
    sets = {
        key: subsample(dataset, eval_examples, seed)
        for key, dataset in splits.evaluation_sets().items()
    }
    return Splits(
        splits.train, sets.pop("val"), sets.pop("test"), extra=sets, unlabelled=splits.unlabelled
    )


def load_testbed_splits(config: TestbedConfig) -> Splits:
    """The full training split and the (subsampled) evaluation sets of a testbed."""
    params = json.dumps(config.data_params(), sort_keys=True)
    return _load(config.data.name, params, config.eval_examples, config.seed)


def evaluation_sets(testbed_dir: Path | str) -> dict[str, GroupedDataset]:
    """Exactly the sets a testbed evaluated its models on: ``val``, ``test``, every shift."""
    return load_testbed_splits(read_config(testbed_dir)).evaluation_sets()


def training_set(train: GroupedDataset, spec: ModelSpec) -> GroupedDataset:
    """The examples ``spec`` trains on: a seeded subset of ``train``, plus augmented copies.

    Subsets of one seed are nested (the first ``train_size`` of one permutation), so a larger
    training set adds examples to a smaller one. An augmentation adds one fixed copy of the
    subset, transformed with a generator seeded by the model's seed: the engine then trains on
    a plain dataset, and resuming a run stays exact.
    """
    settings = spec.settings
    size, seed = settings.get("train_size"), settings["seed"]
    if size is not None and size < len(train):
        order = np.random.default_rng([seed, 1]).permutation(len(train))[:size]
        train = train.subset(np.sort(order))
    augment = settings.get("augment", "none")
    if augment == "none":
        return train
    if train.x.dim() != 4:
        raise ConfigError(
            f"augment {augment!r} needs images (channels, height, width); inputs of "
            f"{train.name} have shape {tuple(train.x.shape[1:])}"
        )
    x = train.x
    if "flip" in augment:
        x = x.flip(-1)
    if "shift" in augment:
        x = _translate(x, torch.Generator().manual_seed(seed))
    return GroupedDataset(
        torch.cat([train.x, x]), train.y.repeat(2), train.group.repeat(2),
        n_classes=train.n_classes, group_names=train.group_names, index=train.index.repeat(2),
        class_names=train.class_names, name=f"{train.name}+{augment}",
    )  # fmt: skip


def _translate(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by up to ``MAX_SHIFT_PIXELS`` in each direction, zeros filling in."""
    pad = MAX_SHIFT_PIXELS
    height, width = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=generator)
    return torch.stack([
        padded[n, :, int(dy) : int(dy) + height, int(dx) : int(dx) + width]
        for n, (dy, dx) in enumerate(offsets)
    ])  # fmt: skip


def model_outputs(
    model: torch.nn.Module, sets: Mapping[str, GroupedDataset], batch_size: int = 1024
) -> dict[str, Outputs]:
    """Softmax outputs of ``model`` on each set (eval mode, in batches, on the model's device)."""
    return {
        name: Outputs.from_probabilities(
            torch.softmax(logits_in_batches(model, dataset.x, batch_size), 1).numpy()
        )
        for name, dataset in sets.items()
    }


def _train_network(spec: ModelSpec, splits: Splits, train: GroupedDataset, run_dir: Path):
    from stalwart.recipes.train import fit  # the floor where method names resolve

    settings = spec.settings
    architecture = {
        "mlp": ("hidden", "dropout"),
        "cnn": ("width", "depth", "head"),
        "resnet": ("width", "depth"),
    }[spec.family]
    torch.manual_seed(settings["seed"])  # the initial weights
    model = models.build(spec.family, train, **{key: settings[key] for key in architecture})
    cfg = TrainConfig(
        epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
        optimizer=settings["optimizer"], weight_decay=settings["weight_decay"],
        seed=settings["seed"], select="last", device="cpu", progress=False,
    )  # fmt: skip
    # The last epoch, not the best on validation: the testbed studies models as trained, and
    # selecting on `val` would tie every model to the ID set the line is read against.
    training = Splits(train, splits.val, splits.test)
    return fit(model, "erm", training, cfg, run_dir=run_dir, resume=True).model


def _sklearn_probabilities(spec: ModelSpec, train: GroupedDataset, sets: Mapping[str, Any]):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    settings, family = spec.settings, spec.family
    featurize = _flat
    if family == "random_features":
        from stalwart.models.random_features import RandomFeatures

        projection = RandomFeatures(
            train.input_shape, train.n_classes, n_features=settings["n_features"],
            seed=settings["seed"],
        )  # fmt: skip

        def featurize(x: torch.Tensor) -> np.ndarray:
            with torch.no_grad():
                return projection.features(x.float()).numpy()

    if family in ("logistic", "random_features"):
        estimator = LogisticRegression(C=settings["C"], max_iter=settings["max_iter"])
    elif family == "knn":
        estimator = KNeighborsClassifier(settings["n_neighbors"], weights=settings["weights"])
    else:
        estimator = RandomForestClassifier(
            settings["n_estimators"], max_depth=settings["max_depth"],
            random_state=settings["seed"], n_jobs=1,
        )  # fmt: skip
    with warnings.catch_warnings():
        # max_iter is a zoo setting: a not-quite-converged model is one more model of the zoo.
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(featurize(train.x), train.y.numpy())
    found = {}
    for name, dataset in sets.items():
        # Columns of the classes seen in training, placed among all classes of the data.
        probabilities = np.zeros((len(dataset), train.n_classes))
        probabilities[:, estimator.classes_] = estimator.predict_proba(featurize(dataset.x))
        found[name] = probabilities
    return found


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.flatten(1).float().numpy()


def run_model(spec: ModelSpec, splits: Splits, model_dir: Path | str) -> None:
    """Train one model of the zoo and write its outputs on every evaluation set.

    Networks train through the engine (ERM, the last epoch kept) in ``model_dir/run``, which
    resumes exactly if interrupted; scikit-learn models train directly (they are fast and
    deterministic given their seed). ``outputs.npz`` is written last, so a model without it
    is trained (or resumed) again.

    Args:
        spec: the model.
        splits: the training split and the evaluation sets (``val``, ``test``, extras).
        model_dir: the model's folder in the testbed, ``TESTBED/models/<spec.id>``.
    """
    from threadpoolctl import threadpool_limits

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train = training_set(splits.train, spec)
    sets = splits.evaluation_sets()
    # BLAS in scikit-learn follows PyTorch's thread count, which the executor set per worker.
    with threadpool_limits(torch.get_num_threads()):
        if spec.neural:
            model = _train_network(spec, splits, train, model_dir / RUN_SUBDIR)
            outputs = model_outputs(model, sets)
        else:
            probabilities = _sklearn_probabilities(spec, train, sets)
            outputs = {k: Outputs.from_probabilities(p) for k, p in probabilities.items()}
    info = {
        "id": spec.id, "family": spec.family, "settings": spec.settings,
        "train_examples": len(train), "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip
    write_outputs(model_dir, outputs, info)


def train_testbed_model(task: tuple[dict[str, Any], dict[str, Any]]) -> tuple[str, float]:
    """Executor task: ``(testbed config as JSON, spec as a dict)`` → ``(model id, seconds)``.

    Module-level and given plain data, so local processes and Ray tasks can run it; the
    testbed's data load once per process (cached).
    """
    raw_config, raw_spec = task
    config = TestbedConfig.model_validate(raw_config)
    spec = ModelSpec(raw_spec["family"], raw_spec["settings"])
    model_dir = config.root() / MODELS_DIR / spec.id
    if not is_finished(model_dir):
        run_model(spec, load_testbed_splits(config), model_dir)
    return spec.id, float(json.loads((model_dir / "model.json").read_text())["seconds"])


def run_pool(
    run_dir: Path | str, testbed_dir: Path | str, unlabelled: str, id_set: str = "val"
) -> tuple[ModelPool, str]:
    """The testbed's models plus a separately trained run's model, in one ``ModelPool``.

    The pool holds every model's outputs on ``id_set`` (labelled) and on ``unlabelled`` (a
    shift whose labels are not read). Returns the pool and the run's name in it
    (``run:<folder>``).

    Raises:
        CheckpointError: ``run_dir`` holds no trained model.
        DataError: an unknown set, or a model whose inputs or classes do not match the testbed's.
    """
    from stalwart.experiments.run import load_run  # the run directory's reader

    testbed = Testbed(testbed_dir)
    testbed.check_set(id_set)
    testbed.check_set(unlabelled)
    sets = evaluation_sets(testbed_dir)
    for name in (id_set, unlabelled):
        if not np.array_equal(sets[name].y.numpy(), testbed.labels[name]):
            raise DataError(
                f"the testbed's set {name!r} rebuilt from its config differs from the one its "
                "models were evaluated on (has the data package changed?); run the testbed again"
            )
    _, run_splits, model = load_run(run_dir)
    ours, theirs = run_splits.train, sets[id_set]
    if (ours.input_shape, ours.n_classes) != (theirs.input_shape, theirs.n_classes):
        raise DataError(
            f"the run in {run_dir} takes inputs of shape {ours.input_shape} in "
            f"{ours.n_classes} classes; the testbed's are {theirs.input_shape} in "
            f"{theirs.n_classes} classes"
        )
    outputs = model_outputs(model, {id_set: sets[id_set], unlabelled: sets[unlabelled]})
    name = f"run:{Path(run_dir).name}"
    id_outputs = {m: testbed.outputs(m, id_set) for m in testbed.models}
    ood_outputs = {m: testbed.outputs(m, unlabelled) for m in testbed.models}
    id_outputs[name], ood_outputs[name] = outputs[id_set], outputs[unlabelled]
    return ModelPool.from_mappings(id_outputs, testbed.labels[id_set], ood_outputs), name


def predict_run(
    run_dir: Path | str,
    testbed_dir: Path | str,
    method: str,
    unlabelled: str,
    id_set: str = "val",
    **options: Any,
) -> float:
    """A separately trained run's accuracy on a testbed's shift, predicted without its labels.

    The run's model joins the testbed's finished models in one ``ModelPool`` (``run_pool``),
    and predictor ``method`` (``naive``, ``atc``, ``doc``, ``aline-s``, ``aline-d``) gives the
    run's prediction. ALine uses the other models' agreements, which is why the testbed's pool
    is needed (Baek et al., arXiv 2206.13089; the line itself is arXiv 2107.04649's).
    """
    pool, name = run_pool(run_dir, testbed_dir, unlabelled, id_set)
    return float(predict(pool, method, **options)[pool.names.index(name)])
