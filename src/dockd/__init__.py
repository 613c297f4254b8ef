"""dockd: the station-side daemon that takes footage off body-worn recorders.

Follow one recording: ``dock`` notices the recorder, ``ingest`` copies and hashes
each file into the ``store``, and the ``ledger`` records it for auditors.
"""

__version__ = "0.1.0"
