"""DICOM network services (DIMSE): the C-STORE and C-ECHO listener."""
