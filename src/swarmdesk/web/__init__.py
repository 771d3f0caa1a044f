"""Server-rendered pages: the agent workspace, admin and the customer portal.

Pages are Jinja2 templates (autoescaped) with small hand-written ES modules; no build step.
Every page is served with a strict Content-Security-Policy: scripts and styles only from our own
origin, no inline handlers, no inline scripts (data for scripts travels in ``data-`` attributes or
``<script type="application/json">`` blocks, which are never executed)."""
