"""``python -m stalwart.cli``: the command line."""

from stalwart.cli import main

main()
