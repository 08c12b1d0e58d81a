"""What the mixed-workload driver and its locustfile share, importable without locust (which patches the process
with gevent when imported)."""
