"""Stack adapters: each contributes the fix records for one serving stack."""
