"""DICOMweb on the same backend: WADO-RS retrieval now (QIDO-RS and STOW-RS later)."""
