"""The local web dashboard the daemon serves on 127.0.0.1 (see ``docs/dashboard.md``).

:mod:`.app` builds and serves it, :mod:`.routes` holds the pages and actions,
:mod:`.actions` calls the command line's own code against the running daemon,
:mod:`.login` keeps the token file and the one-time login links, :mod:`.metrics` serves
Prometheus metrics. Nothing here is imported unless a daemon serves the dashboard or
``chunksync ui`` runs.
"""
