"""The web view (issue 13): routes, templates and static files for ``dockd web``.

Reserved room at the top beside ``cli``: it calls the same functions the CLI calls
and is never imported by anything below it.
"""
