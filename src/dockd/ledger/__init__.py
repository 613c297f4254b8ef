"""The ledger: every device, officer, recording, dock session, alert and audit event.

``models`` holds the schema, ``db`` opens it (and migrates it), ``permissions`` keeps
an SQLite ledger's files confidential, ``failures`` tells a person what a database
failure means, ``audit`` appends to the hash-chained audit trail, ``registry`` and
``queries`` are the intent-named reads and writes the rest of dockd uses.
"""
