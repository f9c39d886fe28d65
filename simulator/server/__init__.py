"""Parts of a receiving server kept in modules of their own (``simulator.receiver`` is the server's core)."""
