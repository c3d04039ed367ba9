"""``python -m edgec`` is the ``edgec`` command."""

from edgec.cli import main

main()
