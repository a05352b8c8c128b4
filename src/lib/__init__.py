"""Libraries: each does one thing and imports only other libraries."""
