"""Notifications: significance, content and delivery (domain logic here is pure)."""
