"""Web pages: the admin pages, logging in, and (later) the dashboard."""
