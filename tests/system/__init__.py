"""Real machinery: systemd-udevd, loop devices, FUSE mounts, PostgreSQL, ``dockd`` processes."""
