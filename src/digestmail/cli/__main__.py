"""``python -m digestmail.cli``: the ``digestmail`` command (e.g. under ``-X importtime``)."""

from digestmail.cli import main

main()
