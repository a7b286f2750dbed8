"""News recommendation: rank an impression's candidate news for a user from their click history (MIND, NRMS)."""
