"""The long-running ``dockd run``: ``service`` composes the dock, the sweeps and the
scheduler; ``scheduler`` is the only APScheduler import; ``notify`` speaks systemd's
sd_notify protocol (READY, WATCHDOG, STOPPING, STATUS).
"""
