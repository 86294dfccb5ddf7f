"""protocols/rest."""
