"""Authorization: who may see and change which case or child (need-to-know), what of it they see (redaction),
emergency access (break-the-glass) and the record of every read (the access log).

- ``policy``: the rules, pure functions over a principal and the facts about a case or child;
- ``case_access``: the read model giving those facts (area, referrals held per agency, break-glass grants);
- ``disclosure``: field-level redaction by agency, as data (``contracts/disclosure.yaml``);
- ``access_log``: the buffered record of reads, searches and exports;
- ``guards``: the FastAPI dependencies every service's routes use;
- ``break_glass`` and ``api``: emergency access and its review, and the access log over HTTP.
"""
