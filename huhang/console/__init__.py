"""The web console (issue 9): plain HTML, CSS and ES modules served by the platform under ``/console/``.

No build step and no front-end packages: the files in ``static/`` are what the browser runs. The console calls the
same API as any agency system (``/v1/...`` at the same origin) and never reads a store, so every page shows only
what the API lets its person see. ``huhang.console.serve`` serves the files; ``huhang.console.gateway`` is the
one-origin process of the distributed form (``huhang console``).
"""
