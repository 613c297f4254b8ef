"""The dock: notices recorders (udev), mounts them read-only, runs one session each."""
