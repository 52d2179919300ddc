"""Accounts: users, sessions, permissions, API keys, the audit log."""
