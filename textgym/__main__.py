"""``python -m textgym``: the ``textgym`` command."""

from textgym.cli import main

main()
