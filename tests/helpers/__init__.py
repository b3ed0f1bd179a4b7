"""Test peers and fixtures shared by the integration tests: real servers, real clients."""
