"""Printable documents (report PDFs) rendered in plain Python, without the web layers."""
