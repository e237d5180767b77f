"""attune-console: a keyboard-driven build console for Docker-based Rust workspaces.

The installed package maps the repository's top-level folders: ``core/`` is
``attune_console.core`` (the UI-free domain), ``tui/`` is ``attune_console.tui``
(the Textual app) and ``styles/`` ships the ``.tcss`` files.
"""

__version__ = "0.1.0"
