"""Credit accounts and the ledger arrive with the billing work; the app is installed now
so its first migration can land without reshuffling the others."""
