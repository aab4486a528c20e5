"""``python -m stalwart``: the command line (also torchrun's entry point)."""

from stalwart.cli import main

main()
