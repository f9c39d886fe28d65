"""``python -m simulator`` is the ``smtp-outage`` command."""

from .cli import main

main()
