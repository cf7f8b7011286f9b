"""The drop-in ``getaddrinfo``/``gethostbyname(_ex)``, one module per concern."""
