"""Ingest: from a recorder's folder tree to verified originals in the store.

``pipeline.run_ingest`` is the whole path of one dock session, stage by stage:
``discover`` what is on the recorder, ``identify`` the device, then per file
copy + hash (``dockd.store``), ``probe`` it, ``naming`` and the registry decide
its time and officer, publish it, and record it in the ledger.
"""
