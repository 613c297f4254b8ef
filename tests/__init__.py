"""dockd's test-suite, in tiers: ``unit`` (one module, no subprocess, no block device,
no server), ``integration`` (modules together on a temp SQLite ledger and temp dirs, the
CLI in-process, real video), ``system`` (udevd, loop devices, FUSE, PostgreSQL, real
``dockd`` processes). What tests share is imported from :mod:`tests.helpers`."""
