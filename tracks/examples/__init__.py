"""Example workflows shipped with the package (the demo runs ``receipts``)."""
