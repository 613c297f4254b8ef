"""Ingest: from a recorder's folder tree to verified originals in the store.

``pipeline.run_ingest`` is the whole path of one dock session, stage by stage:
``discover`` what is on the recorder (``fatreader`` and ``fatformat`` for FAT files
the mount cannot open), ``identify`` the device (``naming`` reads the file names),
``lock`` the recorder and ``recovery`` puts right what a dead run left, ``session``
opens and closes the dock session's row, ``take`` brings each file in (copy + hash
through ``dockd.store``, ``probe``, ``describe`` for its time, officer and flags,
publish, ledger row), and ``outcome`` holds what each file and the session came to.
"""
