"""``python -m hpc``: the same as the ``hpc`` console script."""

from hpc.cli import main

raise SystemExit(main())
