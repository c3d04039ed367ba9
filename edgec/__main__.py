"""``python -m edgec`` is the ``edgec`` command."""

from edgec.entry import main

main()
