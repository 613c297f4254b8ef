"""Background sweeps, each one function the scheduler or the CLI calls.

``retention`` (trash, then purge), ``archive`` and ``fixity`` (with ``unexpected``,
the store's files the ledger does not know) are the sweeps; ``runs`` keeps one run
of each at a time, ``locations`` says where a row's bytes are, ``trash`` brings
files back from the trash, and ``listings`` shows what the retention sweep will take.
"""
