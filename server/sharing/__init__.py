"""Sharing a site's statistics with people who have no account (issue 18): share links."""
