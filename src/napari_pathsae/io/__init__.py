"""Reading slides and Visium samples into one world frame."""
