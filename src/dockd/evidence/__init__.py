"""Evidence work on what is already stored: cases and case import, the per-case link
tree, access requests and the access register, and export (the BagIt package and the
recording form). Called by the CLI (and the web view); never by the ingest path.
"""
