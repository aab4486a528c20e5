"""What the tests of experiment kinds share: a reporter that keeps notes, a refused run."""

import yaml
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.experiments.kinds import Reporter


class Notes(Reporter):
    """Every ``note`` a kind made, in order, in ``lines``."""

    def __init__(self):
        self.lines = []

    def note(self, text):
        self.lines.append(text)


def refused_run(tmp_path, raw):
    """``stalwart run`` on the config ``raw``: it must exit 2 with a message, no traceback.

    Returns the message with its line breaks folded into spaces.
    """
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["run", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())
