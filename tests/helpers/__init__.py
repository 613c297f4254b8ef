"""What the tests share, imported as ``from tests.helpers.<module> import ...``.

``skips`` (need: skip, or fail under CI=true), ``station`` (the test station's config),
``ledgers`` (the ledger backends, registering a recorder), ``pgserver`` (a throw-away
PostgreSQL server), ``blockdev`` (udevd, loop devices, images, the daemon), ``fatimage``
(FAT32 images with GBK names), ``cli_station`` (a station driven through ``dockd``).
Fixtures and hooks live in the conftest.py files; nothing imports a conftest.
"""
