"""``python -m attune_console`` runs the same CLI as the ``attune-console`` script."""

from attune_console.cli import main

raise SystemExit(main())
