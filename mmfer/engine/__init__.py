"""One training and scoring engine for every branch."""
