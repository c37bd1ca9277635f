"""Format compliance: which JSON schema applies to an exchange, and the verdict on its output."""
