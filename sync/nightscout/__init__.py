"""Optional Nightscout destination: documents in Nightscout's shapes and a v1/v3 uploader."""
