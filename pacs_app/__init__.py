"""Teleradiology PACS."""
