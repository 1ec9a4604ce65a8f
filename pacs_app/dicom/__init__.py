"""DICOM handling in plain Python: header reading and validation (rendering comes later)."""
