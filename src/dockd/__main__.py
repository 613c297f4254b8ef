"""``python -m dockd``: the same entry point as the ``dockd`` console script."""

from dockd.cli import main

raise SystemExit(main())
