"""BLE drivers (bleak): CGM, heart-rate band, blood-glucose meter and insulin pump."""
