"""Helpers that start real servers (Redis, a Redis Cluster, nginx) for the tests."""
