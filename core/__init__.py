"""The UI-free domain of attune-console.

Nothing here imports Textual (an import-linter contract and a test enforce it):
the workspace model, compose and Dockerfile analysis, change impact, the
BuildKit client and progress model, packs, services, watcher and history.
"""
